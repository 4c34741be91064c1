"""Which device an array lives on, what that device offers, and how much memory a launch may
take there. The readers import cupy / numba.cuda only when called; the arithmetic is pure.
"""
from __future__ import annotations

import os
from typing import Optional

from .limits import DeviceLimits, KernelAttributes


def simulator() -> bool:
    """numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def device_index(a) -> Optional[int]:
    """The CUDA device ordinal of a cupy array or torch CUDA tensor (None for host arrays and
    for arrays that do not say: the current device is used then)."""
    module = type(a).__module__
    if module.startswith("torch"):
        if not getattr(a, "is_cuda", False):
            return None
        index = a.device.index
        if index is None:                                   # 'cuda' without an index: torch's current
            import torch
            index = torch.cuda.current_device()
        return int(index)
    if module.startswith("cupy"):
        return int(a.device.id)
    return None


def budget_bytes(free: int, pool_free: int, fraction: float = 0.5) -> int:
    """Device bytes one launch may allocate: ``fraction`` of what is free to this process, i.e.
    the driver's free memory plus what cupy's pool holds unused (memGetInfo counts that as
    taken, though the pool hands it out first)."""
    return int((int(free) + int(pool_free)) * fraction)


def cupy_budget(pool=None, mem_get_info=None) -> int:
    """:func:`budget_bytes` on cupy's current device: ``mem_get_info()`` -> (free, total) (default
    cupy.cuda.runtime.memGetInfo) and ``pool`` with free_bytes() (default cupy's memory pool)."""
    if pool is None or mem_get_info is None:
        import cupy
        pool = cupy.get_default_memory_pool() if pool is None else pool
        mem_get_info = cupy.cuda.runtime.memGetInfo if mem_get_info is None else mem_get_info
    free, _ = mem_get_info()
    return budget_bytes(free, pool.free_bytes())


def limits_from_attributes(name: str, attributes: dict, compute_capability) -> DeviceLimits:
    """DeviceLimits from a dict keyed by CUDA attribute names without the cudaDevAttr prefix
    (cupy's ``Device.attributes``)."""
    a = attributes
    return DeviceLimits(name=name, compute_capability=tuple(int(c) for c in compute_capability),
                        sm_count=int(a["MultiProcessorCount"]),
                        shared_per_block=int(a["MaxSharedMemoryPerBlock"]),
                        shared_per_block_optin=int(a.get("MaxSharedMemoryPerBlockOptin", a["MaxSharedMemoryPerBlock"])),
                        shared_per_sm=int(a["MaxSharedMemoryPerMultiprocessor"]),
                        registers_per_block=int(a["MaxRegistersPerBlock"]),
                        registers_per_sm=int(a["MaxRegistersPerMultiprocessor"]),
                        threads_per_block=int(a["MaxThreadsPerBlock"]),
                        threads_per_sm=int(a["MaxThreadsPerMultiProcessor"]),
                        reserved_shared_per_block=int(a.get("ReservedSharedMemoryPerBlock", 0)))


def cupy_limits(device_id: int) -> DeviceLimits:
    """The limits of cupy device ``device_id`` (memoised per device)."""
    if device_id not in _LIMITS:
        import cupy
        dev = cupy.cuda.Device(device_id)
        name = cupy.cuda.runtime.getDeviceProperties(device_id)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        cc = dev.compute_capability                          # e.g. '90'
        _LIMITS[device_id] = limits_from_attributes(name, dev.attributes, (cc[:-1], cc[-1]))
    return _LIMITS[device_id]


_LIMITS: dict = {}


def kernel_attributes(fn) -> KernelAttributes:
    """A cupy RawKernel's static shared memory and registers per thread."""
    return KernelAttributes(static_shared=int(fn.shared_size_bytes), registers=int(fn.num_regs))
