"""Peak-memory probe, run in a fresh process by bench/test_bench_memory.py (numba's allocations
are invisible to tracemalloc, so the resident-set high-water mark is used).

    python bench/memory_probe.py stream FEATURES.h5 CHUNK_BYTES [WINDOW]
    python bench/memory_probe.py kernel VIDEOS LENGTH DIM [lanp|textbook]

Prints one JSON line: the resident set just before the measured call (after imports, numba
warm-up and, for 'kernel', the input), its high-water mark during the call (VmHWM, reset with
/proc/self/clear_refs just before; ru_maxrss where that is unavailable), and their difference.
"""
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> int:
    """Reset the high-water mark; return the current resident set in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak() -> int:
    try:
        return _status("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv):
    from lanp.kernels import propagate
    propagate(np.random.default_rng(0).random((8, 4), dtype=np.float32) + 0.1, np.array([0, 4, 8]))
    propagate(np.random.default_rng(0).random((8, 4), dtype=np.float32) + 0.1, np.array([0, 4, 8]), window=2)
    out = {"mode": argv[0]}
    if argv[0] == "stream":
        from lanp.method.options import PropagateConfig
        from lanp.runners.file import label_file
        path, chunk = argv[1], int(argv[2])
        window = int(argv[3]) if len(argv) > 3 else None
        before = reset_peak()
        t = time.perf_counter()
        res = label_file(path, PropagateConfig(window=window), progress=False, chunk_bytes=chunk)
        out.update(seconds=time.perf_counter() - t, kernel_seconds=res.kernel_seconds,
                   file_bytes=Path(path).stat().st_size, chunk_bytes=chunk, window=window,
                   snippets=int(res.offsets[-1]), videos=len(res.video_ids))
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        import workloads
        V, L, D, impl = int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
        x, off = workloads.uniform(V, L, D)
        before = reset_peak()
        t = time.perf_counter()
        if impl == "lanp":
            propagate(x, off)
        else:
            import peers
            peers.textbook_cg(x, off)
        out.update(seconds=time.perf_counter() - t, impl=impl, input_bytes=x.nbytes)
    after = peak()
    out.update(rss_before=before, rss_peak=after, rss_delta=after - before)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
