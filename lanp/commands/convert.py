"""Convert per-video .npy features (RTFM .list, C2FPL array + ranges, LANP split file, XD-Violence
per-crop files and VGGish audio, or a plain folder) into lanp's packed HDF5 layout (features,
offsets, video_ids), streaming, keeping the source's video order and ids.

XD-Violence (--format xd, detected from the names): <video>__0.npy ... <video>__4.npy (T, 1024)
become one (T, 5, 1024) video (--crops mean averages them); <video>__vggish.npy (T, 128) are
audio features; --audio LIST_OR_FOLDER appends each video's audio to its visual features
(1024 + 128 = 1152 per crop).

examples:
  lanp convert list/shanghai-i3d-train-10crop.list --root SH_Train_ten_crop_i3d --suffix _i3d.npy --out sh_train.h5
  lanp convert concat.npy --ranges ranges.npy --names names.txt --out feats.h5
  lanp convert data/shanghaitech/train_split.txt --root feats/ --suffix _i3d.npy --out train.h5
  lanp convert feats/ --out feats.h5 --dtype float16 --compression gzip
  lanp convert xd/rgb_test.list --root xd/i3d --crops keep --out xd_test.h5
  lanp convert xd/rgb_test.list --root xd/i3d --audio xd/audio_test.list --audio-root xd/vggish --out xd_av.h5
"""
from __future__ import annotations

import argparse
import time

from lanp.data.convert import COMPRESSIONS, FORMATS, STORAGE_DTYPES


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a .list file (rtfm), a concatenated .npy (c2fpl), a split file "
                                  "(name,label,frames), or a folder of .npy files")
    p.add_argument("--out", required=True, help="output packed feature file (.h5)")
    p.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                   help="source format (default auto: folder -> folder, .npy -> c2fpl, a text file of "
                        "'name,label,frames' lines -> split, any other text file -> rtfm)")
    p.add_argument("--root", help="rtfm: folder the listed base names are resolved against (default: the "
                                  "list's folder); split: the folder of <name><suffix> files")
    p.add_argument("--suffix", default=None,
                   help="file name ending stripped to form ids (rtfm, folder) or appended to names (split); "
                        "default .npy, e.g. _i3d.npy")
    p.add_argument("--ranges", help="c2fpl: (V, 2) integer .npy of [from, to) row ranges")
    p.add_argument("--names", help="c2fpl: text file of V video ids, one per line (default video_000000, ...)")
    p.add_argument("--audio", help="xd: a .list or folder of VGGish <video>__vggish.npy files appended to "
                                   "each video's visual features")
    p.add_argument("--audio-root", help="xd: folder the --audio list's base names are resolved against")
    p.add_argument("--crops", choices=("mean", "keep"), default="mean",
                   help="(T, C, D) inputs: average the C crops (default) or keep them, stored (N, C, D)")
    p.add_argument("--dtype", choices=STORAGE_DTYPES, default="float32", help="storage dtype (default float32)")
    p.add_argument("--chunk-rows", type=int, default=None, help="HDF5 chunk height in snippets (default ~1 MiB)")
    p.add_argument("--compression", choices=COMPRESSIONS, default="none")
    p.add_argument("--compression-level", type=int, default=None, help="gzip level 0-9")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from lanp import config_file
    from lanp.data.convert import convert, detect_format, sources_for
    from lanp.outputs import check_output
    t0 = time.perf_counter()
    inputs = [("SOURCE", args.source), ("--ranges", args.ranges), ("--names", args.names),
              ("--audio", args.audio)]
    check_output(args.out, "--out", inputs)                # before the sources are read
    fmt = detect_format(args.source, ranges=args.ranges, root=args.root) if args.format == "auto" else args.format
    sources = sources_for(fmt, args.source, root=args.root, ranges=args.ranges, names=args.names,
                          suffix=args.suffix, audio=args.audio, audio_root=args.audio_root)
    attrs = {"source": str(args.source), "source_format": fmt, **config_file.output_attrs()}
    if args.audio:
        attrs["audio_source"] = str(args.audio)
    summary = convert(sources, args.out, crops=args.crops, dtype=args.dtype, chunk_rows=args.chunk_rows,
                      compression=args.compression, compression_level=args.compression_level,
                      attrs=attrs, quiet=args.quiet,
                      inputs=inputs)
    print(f"{fmt}: {summary.videos} videos, {summary.snippets} snippets, features {summary.shape} "
          f"{summary.dtype}, {time.perf_counter() - t0:.2f} s")
    print(f"wrote {summary.out}")
    return 0
