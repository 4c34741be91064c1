"""What a launch may use on one device: shared memory (static + dynamic, with and without the
opt-in), registers and blocks per SM, as pure functions of the device's and the kernel's
attributes. Nothing here is hard-coded for one architecture; :mod:`lanp.kernels.cuda.devices`
reads the attributes from the device (and bench/gpu_check.sh prints them).

CUDA's rules, per block:

    static + dynamic <= shared_per_block (48 KiB)            without the opt-in;
    static + dynamic <= shared_per_block_optin                after raising the kernel's
        max_dynamic_shared_size_bytes (cudaFuncAttributeMaxDynamicSharedMemorySize) to dynamic;
    threads * registers_per_thread <= registers_per_block;
and per SM, blocks_per_sm = min(threads_per_sm // threads,
    registers_per_sm // (threads * registers_per_thread),
    shared_per_sm // (static + dynamic + reserved_shared_per_block)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

KIB = 1024


@dataclass(frozen=True)
class DeviceLimits:
    """CUDA device attributes the planner uses (cupy's ``Device.attributes`` names in brackets)."""

    name: str
    compute_capability: Tuple[int, int]
    sm_count: int                   # [MultiProcessorCount]
    shared_per_block: int           # [MaxSharedMemoryPerBlock]: static + dynamic, no opt-in
    shared_per_block_optin: int     # [MaxSharedMemoryPerBlockOptin]
    shared_per_sm: int              # [MaxSharedMemoryPerMultiprocessor]
    registers_per_block: int        # [MaxRegistersPerBlock]
    registers_per_sm: int           # [MaxRegistersPerMultiprocessor]
    threads_per_block: int = 1024   # [MaxThreadsPerBlock]
    threads_per_sm: int = 2048      # [MaxThreadsPerMultiProcessor]
    reserved_shared_per_block: int = 0   # [ReservedSharedMemoryPerBlock] (1 KiB from sm_80)

    def describe(self) -> str:
        cc = "%d.%d" % self.compute_capability
        return (f"{self.name} (sm_{cc.replace('.', '')}): {self.sm_count} SMs, shared memory per block "
                f"{self.shared_per_block} B ({self.shared_per_block_optin} B opt-in), per SM "
                f"{self.shared_per_sm} B ({self.reserved_shared_per_block} B reserved per block), "
                f"registers {self.registers_per_block} per block / {self.registers_per_sm} per SM, "
                f"threads {self.threads_per_block} per block / {self.threads_per_sm} per SM")


@dataclass(frozen=True)
class KernelAttributes:
    """A compiled kernel's own attributes (cupy RawKernel ``shared_size_bytes``, ``num_regs``)."""

    static_shared: int              # bytes of __shared__ arrays declared in the kernel
    registers: int                  # registers per thread


def dynamic_shared_default(device: DeviceLimits, kernel: KernelAttributes) -> int:
    """Most dynamic shared memory a launch may ask for without the opt-in."""
    return max(0, device.shared_per_block - kernel.static_shared)


def dynamic_shared_max(device: DeviceLimits, kernel: KernelAttributes) -> int:
    """Most dynamic shared memory a launch may ask for after the opt-in."""
    return max(0, device.shared_per_block_optin - kernel.static_shared)


def shared_opt_in(device: DeviceLimits, kernel: KernelAttributes, dynamic: int) -> Optional[int]:
    """The value to set as the kernel's max_dynamic_shared_size_bytes before a launch with
    ``dynamic`` bytes, or None where no opt-in is needed (static + dynamic <= 48 KiB). Raises
    ValueError where even the opt-in cannot give that much."""
    if dynamic <= dynamic_shared_default(device, kernel):
        return None
    if dynamic > dynamic_shared_max(device, kernel):
        raise ValueError(f"dynamic shared memory of {dynamic} B is invalid on {device.name}: with "
                         f"{kernel.static_shared} B static it must be at most "
                         f"{dynamic_shared_max(device, kernel)} B")
    return int(dynamic)


def check_launch(device: DeviceLimits, kernel: KernelAttributes, threads: int, dynamic: int = 0) -> None:
    """Raise ValueError (naming the limit) for a launch the device would refuse."""
    if threads > device.threads_per_block:
        raise ValueError(f"threads={threads} is invalid on {device.name}: at most {device.threads_per_block} per block")
    if threads * kernel.registers > device.registers_per_block:
        raise ValueError(f"threads={threads} x {kernel.registers} registers is invalid on {device.name}: at most "
                         f"{device.registers_per_block} registers per block")
    if kernel.static_shared + dynamic > device.shared_per_block_optin:
        raise ValueError(f"{kernel.static_shared} B static + {dynamic} B dynamic shared memory is invalid on "
                         f"{device.name}: at most {device.shared_per_block_optin} B per block")


def blocks_per_sm(device: DeviceLimits, kernel: KernelAttributes, threads: int, dynamic: int = 0) -> int:
    """Resident blocks per SM (the occupancy bound of threads, registers and shared memory)."""
    by_threads = device.threads_per_sm // threads
    by_registers = device.registers_per_sm // max(1, threads * kernel.registers)
    by_shared = device.shared_per_sm // max(1, kernel.static_shared + dynamic + device.reserved_shared_per_block)
    return int(min(by_threads, by_registers, by_shared))
