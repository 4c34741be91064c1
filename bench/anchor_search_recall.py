"""Recall and time of the projected anchor search against the exact one (issue 15, item 4).

    python bench/anchor_search_recall.py [--videos V] [--dim D] [--grid 32x8,64x16,...]

Workloads: the UCF-Crime training lengths (bench/workloads.ucf_full: 790,271 snippets, the 2V
seed snippets as anchors, D = 1024 by default) and, when /work/shared/data (or $LANP_SHARED_DATA)
has it, the real ShanghaiTech I3D sample (7 videos; every crop of every snippet a row, D = 2048)
with two anchor sets: the 2V seeds (crop means) and every crop row of the other videos.

recall@1: the share of rows whose projected answer (the nearest anchor's cosine) equals the exact
search's to 1e-6 (the exact kernel picks its candidates by float32 dot products, so a near-tie
within ~1e-7 may give it the other anchor); what a miss does to the cross-video rules: the largest
change of a video's low-tail score (q10 of n) and the share of snippets whose pseudo-label (the
floor(0.2 L) least normal of each video) stays the same; "certified": rows the bounds prove exact. Times are of the search alone, chunked
as the file runner reads (about 256 MiB of features at a time).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402
from lanp.kernels import anchor_neighbours  # noqa: E402
from lanp.method.anchor_search import ProjectedAnchors, SearchStats  # noqa: E402

TIE = 1e-6          # the exact kernel picks by float32 dot products: near-ties within ~1e-7 may swap
GRID = "32x8,32x16,64x8,64x16,128x8,128x16"


def chunks(off, max_rows):
    """Consecutive whole-video ranges of at most ~max_rows rows."""
    v0 = 0
    V = len(off) - 1
    while v0 < V:
        v1 = int(np.searchsorted(off, off[v0] + max_rows, side="right")) - 1
        v1 = max(v1, v0 + 1)
        yield v0, min(v1, V)
        v0 = min(v1, V)


def exact(x, off, anchors, videos, max_rows):
    out = np.empty(x.shape[0])
    for v0, v1 in chunks(off, max_rows):
        a, b = off[v0], off[v1]
        out[a:b] = anchor_neighbours(x[a:b], off[v0:v1 + 1] - a, anchors, videos, k=1, first_video=v0).similarity[:, 0]
    return out


def projected(x, off, index, max_rows):
    out = np.empty(x.shape[0])
    stats = SearchStats()
    for v0, v1 in chunks(off, max_rows):
        a, b = off[v0], off[v1]
        sim, _, s = index.search(x[a:b], off[v0:v1 + 1] - a, 1, first_video=v0)
        out[a:b] = sim[:, 0]
        stats.add(s)
    return out, stats


def labels_agreement(got, want, off, ratio=0.2):
    """(max |video score difference|, share of snippets with the same pseudo-label) of the
    cross-video rules (low-tail score 1 - q10 of n; the floor(r L) least normal snippets of every
    video) on the projected against the exact n."""
    worst, same = 0.0, 0
    for v in range(len(off) - 1):
        a, b = off[v], off[v + 1]
        worst = max(worst, abs(float(np.quantile(got[a:b], 0.1) - np.quantile(want[a:b], 0.1))))
        m = int(np.floor(ratio * (b - a)))
        mine, theirs = np.zeros(b - a, bool), np.zeros(b - a, bool)
        mine[np.argsort(got[a:b], kind="stable")[:m]] = True
        theirs[np.argsort(want[a:b], kind="stable")[:m]] = True
        same += int(np.sum(mine == theirs))
    return worst, same / float(off[-1])


def measure(name, x, off, anchors, videos, grid, projections=("pca",)):
    max_rows = max(64, (256 << 20) // (x.shape[1] * x.itemsize))
    anchor_neighbours(x[:off[2]], off[:3], anchors, videos, k=16)       # compile outside the timings
    t = time.perf_counter()
    want = exact(x, off, anchors, videos, max_rows)
    t_exact = time.perf_counter() - t
    print(f"\n{name}: N = {x.shape[0]}, A = {anchors.shape[0]}, D = {x.shape[1]}; exact search {t_exact:.2f} s")
    print("| projection | d | c | recall@1 | certified | re-scored pairs / row | mean shortfall of a miss | "
          "max video-score change | same pseudo-label | fit s | search s | x exact |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for projection in projections:
        for d, c in grid:
            t = time.perf_counter()
            index = ProjectedAnchors(anchors, videos, d, c, projection)
            fit = time.perf_counter() - t
            t = time.perf_counter()
            got, stats = projected(x, off, index, max_rows)
            t_search = time.perf_counter() - t
            hit = np.abs(got - want) <= TIE
            short = float(np.mean((want - got)[~hit])) if (~hit).any() else 0.0
            assert np.all(got <= want + TIE), "a projected similarity above the exact maximum"
            score, same = labels_agreement(got, want, off)
            print(f"| {projection} | {index.dims} | {index.candidates} | {hit.mean():.4f} | "
                  f"{stats.certified / stats.rows:.3f} | {stats.rescored / stats.rows:.2f} | {short:.2e} | "
                  f"{score:.1e} | {same:.4f} | {fit:.2f} | {t_search:.2f} | {t_search / t_exact:.2f} |", flush=True)


def shanghaitech(root):
    sample = Path(root) / "shanghaitech_i3d_sample"
    if not (sample / "sample.list").exists():
        return None
    videos = [np.load(sample / p) for p in (sample / "sample.list").read_text().split()]
    return videos


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=None, help="first V UCF-Crime training lengths (default all)")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--grid", default=GRID, help="dxc pairs, comma-separated")
    p.add_argument("--random", action="store_true", help="also the seeded random projection")
    p.add_argument("--skip-ucf", action="store_true")
    args = p.parse_args(argv)
    grid = [tuple(int(v) for v in g.split("x")) for g in args.grid.split(",")]
    projections = ("pca", "random") if args.random else ("pca",)
    if not args.skip_ucf:
        x, off = workloads.ucf_full(dim=args.dim, max_videos=args.videos)
        rows = np.stack([off[:-1], off[1:] - 1], axis=1).ravel()
        measure(f"UCF-Crime training lengths (synthetic, bench/workloads), {len(off) - 1} videos", x, off,
                np.ascontiguousarray(x[rows]), np.repeat(np.arange(len(off) - 1), 2), grid, projections)
    videos = shanghaitech(os.environ.get("LANP_SHARED_DATA", "/work/shared/data"))
    if videos is None:
        print("ShanghaiTech sample not found: skipped")
        return
    means = [v.mean(axis=1) for v in videos]
    x = np.ascontiguousarray(np.concatenate(means), dtype=np.float32)
    off = np.concatenate([[0], np.cumsum([len(v) for v in means])]).astype(np.int64)
    rows = np.stack([off[:-1], off[1:] - 1], axis=1).ravel()
    measure("ShanghaiTech I3D sample (crop means), 2V seed anchors", x, off, np.ascontiguousarray(x[rows]),
            np.repeat(np.arange(len(off) - 1), 2), grid, projections)
    crops = np.ascontiguousarray(np.concatenate([v.reshape(-1, v.shape[-1]) for v in videos]), dtype=np.float32)
    coff = off * videos[0].shape[1]
    measure("ShanghaiTech I3D sample, every crop a row, every crop row of another video an anchor", crops, coff,
            crops, np.repeat(np.arange(len(videos)), np.diff(coff)), grid, projections)


if __name__ == "__main__":
    main()
