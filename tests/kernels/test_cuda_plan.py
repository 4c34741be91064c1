"""The CUDA launch planner as pure functions of device and kernel attributes (no GPU needed):
shared memory with and without the opt-in (the kernels' static array included), occupancy,
fused/two-step split, memory groups and sub-batches, the pool-aware device budget, and the
input's device. Attribute sets are the CUDA attribute values of one card per architecture
(CUDA C Programming Guide, "Technical Specifications per Compute Capability"); expected limits
are computed by hand in the comments."""
from __future__ import annotations

import re
import types

import numpy as np
import pytest

from lanp.kernels import InputError, pack_seeds
from lanp.kernels.cuda import devices, limits
from lanp.kernels.cuda import plan as cuda_plan
from lanp.kernels.cuda.limits import KernelAttributes
from shared import DEVICES  # noqa: E402

# the fused kernels' static shared array: double red[LANP_BLOCK] = 8 * 256 = 2048 bytes
FUSED = KernelAttributes(static_shared=8 * cuda_plan.BLOCK, registers=128)
# most dynamic bytes after the opt-in = opt-in - 2048
OPT_IN_DYNAMIC = {"sm_75": 65536 - 2048, "sm_86": 101376 - 2048, "sm_89": 101376 - 2048, "sm_90": 232448 - 2048}
# longest dense video fused: (L^2 + 5 L) * 8 <= OPT_IN_DYNAMIC, and L <= 128:
#   sm_75: 86^2 + 5*86 = 7826 doubles = 62608 B <= 63488 < 64032 (L = 87)
#   sm_86/89: 108^2 + 540 = 12204 doubles = 97632 B <= 99328 < 99408 (L = 109)
#   sm_90: 128^2 + 640 = 17024 doubles = 136192 B <= 230400: the L <= 128 cap
LONGEST_DENSE_FUSED = {"sm_75": 86, "sm_86": 108, "sm_89": 108, "sm_90": 128}


@pytest.mark.parametrize("arch", DEVICES)
def test_static_array_counts_against_the_48_kib_without_opt_in(arch):
    dev = DEVICES[arch]
    assert limits.dynamic_shared_default(dev, FUSED) == 49152 - 2048 == 47104
    assert limits.shared_opt_in(dev, FUSED, 47104) is None             # 2048 + 47104 = 48 KiB
    for dynamic in (47105, 48000, 49152):                              # the range that failed
        assert limits.shared_opt_in(dev, FUSED, dynamic) == dynamic
    assert limits.dynamic_shared_max(dev, FUSED) == OPT_IN_DYNAMIC[arch]
    assert limits.shared_opt_in(dev, FUSED, OPT_IN_DYNAMIC[arch]) == OPT_IN_DYNAMIC[arch]
    with pytest.raises(ValueError, match=rf"at most {OPT_IN_DYNAMIC[arch]} B"):
        limits.shared_opt_in(dev, FUSED, OPT_IN_DYNAMIC[arch] + 1)


@pytest.mark.parametrize("arch", DEVICES)
def test_fused_split_follows_the_devices_opt_in_limit(arch):
    dev = DEVICES[arch]
    lengths = np.arange(1, 201)
    fused, rest, smem = cuda_plan.split_fused(lengths, 0, dev, FUSED)
    assert lengths[fused].max() == LONGEST_DENSE_FUSED[arch]
    assert sorted(np.concatenate([fused, rest]).tolist()) == list(range(200))
    assert smem == int(cuda_plan.fused_doubles(LONGEST_DENSE_FUSED[arch], 0)) * 8
    assert 2048 + smem <= dev.shared_per_block_optin
    fused, rest, _ = cuda_plan.split_fused(lengths, 5, dev, FUSED)     # band 5: 16 L doubles
    assert lengths[fused].max() == 128 and lengths[rest].min() == 129


@pytest.mark.parametrize("arch", DEVICES)
def test_occupancy_and_launch_checks(arch):
    dev = DEVICES[arch]
    # 256 threads x 128 registers = 32768: two blocks' registers per SM; threads per SM 1024 /
    # 1536 / 2048 -> 4 / 6 / 8 blocks; shared: 64 KiB // (2048 + 0) = 32 (sm_75), 100 KiB //
    # (2048 + 1024) = 33, 228 KiB // 3072 = 76
    assert limits.blocks_per_sm(dev, FUSED, 256) == 2
    # the longest fused dense video's smem: sm_75 65536 // (2048 + 62608) = 1; sm_86 102400 //
    # (2048 + 97632 + 1024) = 1; sm_90 233472 // (2048 + 136192 + 1024) = 1
    smem = int(cuda_plan.fused_doubles(LONGEST_DENSE_FUSED[arch], 0)) * 8
    assert limits.blocks_per_sm(dev, FUSED, 256, smem) == 1
    small = KernelAttributes(static_shared=2048, registers=32)         # 8192 registers a block
    assert limits.blocks_per_sm(dev, small, 256) == dev.threads_per_sm // 256
    limits.check_launch(dev, FUSED, 256, smem)
    with pytest.raises(ValueError, match="registers per block"):
        limits.check_launch(dev, KernelAttributes(2048, 65), 1024)     # 66560 > 65536
    with pytest.raises(ValueError, match="per block"):
        limits.check_launch(dev, FUSED, 2048)
    assert dev.name in dev.describe() and str(dev.shared_per_block_optin) in dev.describe()


def test_limits_read_from_cuda_attribute_names():
    attributes = {"MultiProcessorCount": 132, "MaxSharedMemoryPerBlock": 49152,
                  "MaxSharedMemoryPerBlockOptin": 232448, "MaxSharedMemoryPerMultiprocessor": 233472,
                  "MaxRegistersPerBlock": 65536, "MaxRegistersPerMultiprocessor": 65536,
                  "MaxThreadsPerBlock": 1024, "MaxThreadsPerMultiProcessor": 2048,
                  "ReservedSharedMemoryPerBlock": 1024}
    assert devices.limits_from_attributes("NVIDIA H200", attributes, ("9", "0")) == DEVICES["sm_90"]


@pytest.mark.parametrize("arch", DEVICES)
def test_the_compiled_kernels_fit_the_plan(arch):
    """ptxas's own numbers for lanp.cu (static shared memory, registers) on each architecture:
    the fused kernels' static array is the 2048 B the planner counts, and every kernel can be
    launched with LANP_BLOCK threads and the largest fused scratch."""
    from cuda_build import DEFINES, NVCC, KERNEL_DIR, nvcc_run
    if NVCC is None:
        pytest.skip("nvcc not found")
    proc = nvcc_run(["-cubin", f"-arch={arch}", *DEFINES, "-Xptxas", "-v", "-o", "/dev/null",
                     str(KERNEL_DIR / "lanp.cu")])
    assert proc.returncode == 0, proc.stderr
    found = {}
    for name, body in re.findall(r"Compiling entry function '(\w+)'(.*?)(?=Compiling entry|\Z)", proc.stderr, re.S):
        regs = int(re.search(r"Used (\d+) registers", body).group(1))
        smem = re.search(r"(\d+) bytes smem", body)
        found[name] = KernelAttributes(int(smem.group(1)) if smem else 0, regs)
    assert {"lanp_fused_f32", "lanp_fused_f64", "lanp_solve", "lanp_similarity_f32"} <= set(found)
    dev = DEVICES[arch]
    smem = int(cuda_plan.fused_doubles(LONGEST_DENSE_FUSED[arch], 0)) * 8
    for name, attrs in found.items():
        assert attrs.static_shared in (0, 8 * cuda_plan.BLOCK), (name, attrs)
        limits.check_launch(dev, attrs, cuda_plan.BLOCK, smem if "fused" in name else 0)
        assert limits.blocks_per_sm(dev, attrs, cuda_plan.BLOCK, smem if "fused" in name else 0) >= 1
    _, _, planned = cuda_plan.split_fused(np.arange(1, 200), 0, dev, found["lanp_fused_f64"])
    assert planned == smem


def test_sub_batches_and_their_seeds():
    offsets = np.array([0, 3, 3 + 5, 8 + 1, 9 + 4])
    rows, sub = cuda_plan.subset_rows(offsets, [3, 1])
    assert rows.tolist() == [9, 10, 11, 12, 3, 4, 5, 6, 7] and sub.tolist() == [0, 4, 9]
    seeds = pack_seeds([[0], [4, 1], [0], [3, 0, 2]], np.diff(offsets))
    positions, seed_offsets = cuda_plan.subset_seeds(seeds, [3, 1])
    assert positions.tolist() == [3, 0, 2, 4, 1] and seed_offsets.tolist() == [0, 3, 5]


def test_memory_groups_stay_within_the_budget():
    seed = 5
    rng = np.random.default_rng(seed)
    need = rng.integers(1, 100, size=50)
    groups = cuda_plan.memory_groups(need, 250)
    assert np.concatenate(groups).tolist() == list(range(50)), f"seed {seed}"
    assert all(need[g].sum() <= 250 for g in groups), f"seed {seed}"
    assert [g.tolist() for g in cuda_plan.memory_groups([300, 10, 10], 250)] == [[0], [1, 2]]


def test_two_step_bytes_cover_what_the_similarity_plan_allocates():
    lengths = np.array([700, 40, 1])
    for band in (0, 3, 50):
        plan = cuda_plan.similarity_plan(lengths, band)
        need = cuda_plan.two_step_bytes(lengths, band, 16, 4)
        scratch = (plan.norm_size + plan.lse_size + plan.halo_size - 3) * 8    # sizes are >= 1 each
        assert need.sum() >= int(np.prod(plan.values_shape)) * 8 + scratch + lengths.sum() * (16 * 4 + 4 * 8)


def test_one_block_per_dense_video_is_refused_past_the_limit():
    with pytest.raises(InputError, match=r"video long \(#1\) has L = 61031 .*dense.*one GPU thread block.*--window"):
        cuda_plan.check_block_work(np.array([30, 61031]), 0, ["short", "long"], "f", splits_bands=True)
    cuda_plan.check_block_work(np.array([30, 61031]), 50, None, "f", splits_bands=True)   # chunked
    cuda_plan.check_block_work(np.array([30, 61031]), 50, None, "f", splits_bands=False)  # 6.2e6 entries
    with pytest.raises(InputError, match="banded graph"):
        cuda_plan.check_block_work(np.array([700000]), 50, None, "f", splits_bands=False, limit=10 ** 7)


class FakePool:
    """cupy's memory pool as the budget sees it: bytes it holds unused."""

    def __init__(self, free):
        self.free = free

    def free_bytes(self):
        return self.free


def test_device_budget_counts_the_pools_unused_bytes():
    info = lambda: (6 * 2 ** 30, 80 * 2 ** 30)                         # noqa: E731
    assert devices.cupy_budget(FakePool(0), info) == 3 * 2 ** 30
    assert devices.cupy_budget(FakePool(10 * 2 ** 30), info) == 8 * 2 ** 30   # (6 + 10) / 2
    assert devices.budget_bytes(100, 50, fraction=0.2) == 30


def _fake(module, **attrs):
    cls = type("Fake", (), {"__module__": module})
    obj = cls()
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj


def test_the_inputs_device_is_used():
    assert devices.device_index(_fake("torch", is_cuda=True, device=types.SimpleNamespace(index=1))) == 1
    assert devices.device_index(_fake("torch", is_cuda=False, device=types.SimpleNamespace(index=None))) is None
    assert devices.device_index(_fake("cupy._core.core", device=types.SimpleNamespace(id=2))) == 2
    assert devices.device_index(np.zeros(3)) is None
