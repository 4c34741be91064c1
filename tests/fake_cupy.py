"""A stand-in for the part of cupy that lanp's cupy backend uses, on numpy, whose RawModule runs
lanp.cu's extern "C" host twins (the same __host__ __device__ bodies, built by cuda_build.py). The
backend's own code (plans, fused/two-step split, memory groups, sub-batches, seeds, the shared
memory opt-in, device selection, outputs) then runs on a machine without a GPU.

A launch is refused the way CUDA refuses it: static + dynamic shared memory above 48 KiB
without the opt-in, or above the kernel's max_dynamic_shared_size_bytes / the device's opt-in
limit.
"""
from __future__ import annotations

import types

import numpy as np

from cuda_build import ptr
from lanp.kernels.cuda import plan as cuda_plan


class ndarray(np.ndarray):
    """cupy.ndarray: a numpy array that says it is cupy's, with .get() and .device."""

    def get(self):
        return np.array(self)

    @property
    def device(self):
        return types.SimpleNamespace(id=self.__dict__.get("_device", FakeCupy.current))


ndarray.__module__ = "cupy._core.core"


def _wrap(a):
    a = np.ascontiguousarray(a)
    return a.view(ndarray)


class FakeCupy(types.ModuleType):
    current = 0

    def __init__(self, lib, device_limits, free_bytes, pool_free=0, static_shared=2048, registers=128):
        super().__init__("cupy")
        self.lib, self.limits = lib, device_limits
        self.launches = []                       # (kernel, grid, shared_mem) of every launch
        self.ndarray = ndarray
        fake = self

        class Device:
            def __init__(self, index=None):
                self.id = FakeCupy.current if index is None else int(index)
                self.attributes = {
                    "MultiProcessorCount": device_limits.sm_count,
                    "MaxSharedMemoryPerBlock": device_limits.shared_per_block,
                    "MaxSharedMemoryPerBlockOptin": device_limits.shared_per_block_optin,
                    "MaxSharedMemoryPerMultiprocessor": device_limits.shared_per_sm,
                    "MaxRegistersPerBlock": device_limits.registers_per_block,
                    "MaxRegistersPerMultiprocessor": device_limits.registers_per_sm,
                    "MaxThreadsPerBlock": device_limits.threads_per_block,
                    "MaxThreadsPerMultiProcessor": device_limits.threads_per_sm,
                    "ReservedSharedMemoryPerBlock": device_limits.reserved_shared_per_block}
                self.compute_capability = "%d%d" % device_limits.compute_capability

            def __enter__(self):
                self._previous = FakeCupy.current
                FakeCupy.current = self.id
                return self

            def __exit__(self, *exc):
                FakeCupy.current = self._previous

            def use(self):
                FakeCupy.current = self.id

        runtime = types.SimpleNamespace(
            getDevice=lambda: FakeCupy.current, getDeviceCount=lambda: 2,
            memGetInfo=lambda: (fake.free_bytes, 10 * fake.free_bytes),
            getDeviceProperties=lambda i: {"name": device_limits.name.encode()})
        self.cuda = types.SimpleNamespace(Device=Device, runtime=runtime)
        self.free_bytes, self.pool_free = free_bytes, pool_free
        self.static_shared, self.registers = static_shared, registers

        class Pool:
            def free_bytes(self):
                return fake.pool_free

        self._pool = Pool()

        class Kernel:
            def __init__(self, name):
                self.name = name
                self.shared_size_bytes = fake.static_shared if "fused" in name else 0
                self.num_regs = fake.registers
                self.max_dynamic_shared_size_bytes = 0

            def __call__(self, grid, block, args, shared_mem=0):
                fake.launch(self, grid, block, args, shared_mem)

        class RawModule:
            def __init__(self, code, options):
                assert "#error" in code and any(o.startswith("-DLANP_SQEUCLIDEAN") for o in options)

            def get_function(self, name):
                return Kernel(name)

        self.RawModule = RawModule

    # -- array functions the backend calls ----------------------------------------------------
    def get_default_memory_pool(self):
        return self._pool

    def full(self, shape, value, dtype=None):
        return _wrap(np.full(shape, value, dtype=dtype))

    def zeros(self, shape, dtype=None):
        return _wrap(np.zeros(shape, dtype=dtype))

    def empty(self, shape, dtype=np.float64):
        return _wrap(np.full(shape, np.nan if np.dtype(dtype).kind == "f" else -7, dtype=dtype))

    def asarray(self, a, dtype=None):
        return _wrap(np.asarray(a, dtype=dtype))

    def ascontiguousarray(self, a, dtype=None):
        return _wrap(np.ascontiguousarray(a, dtype=dtype))

    def arange(self, *args, dtype=None):
        return _wrap(np.arange(*args, dtype=dtype))

    def minimum(self, a, b):
        return _wrap(np.minimum(a, b))

    # -- launches ------------------------------------------------------------------------------
    def launch(self, kernel, grid, block, args, shared_mem):
        assert block == (cuda_plan.BLOCK,)
        static = kernel.shared_size_bytes
        if static + shared_mem > self.limits.shared_per_block and shared_mem > kernel.max_dynamic_shared_size_bytes:
            raise RuntimeError(f"CUDA_ERROR_INVALID_VALUE: {kernel.name} asks {static} + {shared_mem} B of shared "
                               f"memory without the opt-in")
        if static + shared_mem > self.limits.shared_per_block_optin:
            raise RuntimeError(f"CUDA_ERROR_INVALID_VALUE: {kernel.name} over the opt-in limit")
        self.launches.append((kernel.name, grid[0], shared_mem))
        n = grid[0]
        c = [ptr(a) if isinstance(a, np.ndarray) else (float(a) if isinstance(a, (float, np.floating)) else int(a))
             for a in args]
        if kernel.name.startswith("lanp_similarity"):
            getattr(self.lib, kernel.name + "_host")(*c[:5], n, *c[5:])
        elif kernel.name == "lanp_solve":
            self.lib.lanp_solve_host(*c[:4], n, *c[4:])
        else:
            scratch = np.full(max(1, shared_mem // 8), np.nan)
            getattr(self.lib, kernel.name + "_host")(*c[:4], n, *c[4:14], ptr(scratch), *c[14:])


def clear_cupy_caches() -> None:
    """Forget the cupy backend's compiled modules and kernels (they belong to one stand-in)."""
    from lanp.kernels.cuda import cupy_backend

    cupy_backend.module.cache_clear()
    cupy_backend.kernel.cache_clear()


def install_fake_cupy(monkeypatch, fake):
    """Put ``fake`` where ``import cupy`` finds it, with fresh backend caches and device limits, and
    register the 'cupy-host' backend over it; returns ``fake``."""
    import sys

    from lanp.kernels import backends
    from lanp.kernels.cuda import cupy_backend, devices

    monkeypatch.setitem(sys.modules, "cupy", fake)
    clear_cupy_caches()
    monkeypatch.setattr(devices, "_LIMITS", {})
    monkeypatch.setitem(backends._REGISTRY, "cupy-host", cupy_backend.CupyBackend())
    return fake
