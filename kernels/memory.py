"""The memory check every backend runs before it allocates graphs: refuse, with a remedy, a batch
whose largest graph would not fit in the memory budget."""
from __future__ import annotations

import os

import numpy as np

from .errors import InputError, video_name


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo, else free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def host_budget() -> int:
    """Bytes one video's graph may take on the host: half of the available memory."""
    return available_memory_bytes() // 2


def graph_bytes(lengths: np.ndarray, window) -> np.ndarray:
    """(V,) bytes of the float64 graph matrix of each video: L^2 * 8 dense,
    L * min(2k+1, 2L-1) * 8 banded (half-width k)."""
    lengths = np.asarray(lengths).astype(np.int64)
    if window is None:
        return lengths * lengths * 8
    return lengths * np.minimum(2 * window + 1, 2 * lengths - 1) * 8


def check_graph_memory(lengths, window, video_ids, where, budget=None, threads: int = 1) -> None:
    """Refuse (InputError with the size in GB and a remedy) graphs that need more than ``budget``
    bytes (default :func:`host_budget`) at once: the largest video's alone, and the ``threads``
    largest together (a parallel backend builds one video's graph per thread at the same time).
    lengths (V,), window None (dense) or k."""
    need = graph_bytes(lengths, window)
    budget = host_budget() if budget is None else budget
    v = int(np.argmax(need))
    remedy = "use a banded graph, e.g. --window 50" if window is None else "use a smaller --window"
    if need[v] > budget:
        raise InputError(f"{where}: {video_name(video_ids, v)} has L = {int(lengths[v])} snippets; its "
                         f"{'dense' if window is None else 'banded'} graph needs {need[v] / 1e9:.2f} GB "
                         f"but only {budget / 1e9:.2f} GB can be spent on one video: {remedy}")
    threads = max(1, min(int(threads), need.shape[0]))
    together = int(np.sort(need)[::-1][:threads].sum())
    if threads > 1 and together > budget:
        raise InputError(f"{where}: the {threads} largest graphs, built at once by {threads} threads, need "
                         f"{together / 1e9:.2f} GB together but only {budget / 1e9:.2f} GB can be spent: {remedy}, "
                         f"or run fewer threads (NUMBA_NUM_THREADS)")


def check_total_memory(need_bytes: int, budget: int, where: str, remedy: str) -> None:
    """Refuse (InputError) one allocation for a whole batch that exceeds ``budget`` bytes."""
    if need_bytes > budget:
        raise InputError(f"{where}: the graphs of all videos together need {need_bytes / 1e9:.2f} GB but only "
                         f"{budget / 1e9:.2f} GB of device memory can be spent: {remedy}")
