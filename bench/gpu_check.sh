#!/usr/bin/env bash
# One command for a GPU machine (cupy-cuda13x, numba, numba-cuda, torch preinstalled, no network):
# runs every GPU test and the GPU benchmark from the source tree, installs nothing, prints a short
# table last.   Usage: bash bench/gpu_check.sh [--quick]
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# lanp.kernels lives in kernels/ (setuptools package-dir): if lanp is not installed, build a
# link farm lanp/ -> lanp/* + kernels/ and put it first on PYTHONPATH.
if ! "$PY" -c "import lanp.kernels" 2>/dev/null; then
    mkdir -p "$WORK/src/lanp"
    for f in "$ROOT"/lanp/*; do ln -s "$f" "$WORK/src/lanp/$(basename "$f")"; done
    ln -s "$ROOT/kernels" "$WORK/src/lanp/kernels"
    export PYTHONPATH="$WORK/src${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import lanp.kernels, sys; print('lanp.kernels from', lanp.kernels.__file__)" || exit 1

"$PY" - <<'EOF'
from lanp.kernels import backends
for name in ("cupy", "numba-cuda"):
    ok, why = backends._REGISTRY[name].available()
    print(f"backend {name}: {'available' if ok else 'NOT available: ' + why}")
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"

echo "== device attributes the launch planner uses (lanp.kernels.cuda.limits)"
"$PY" - <<'EOF' 2>&1 | tee "$WORK/attributes.txt"
try:
    import cupy
    from lanp.kernels.cuda import cupy_backend, devices, limits, plan
except Exception as exc:
    raise SystemExit(f"device attributes: not available ({exc!r})")
for i in range(cupy.cuda.runtime.getDeviceCount()):
    with cupy.cuda.Device(i):
        dev = devices.cupy_limits(i)
        print(f"device {i}: {dev.describe()}")
        for name in ("lanp_fused_f32", "lanp_fused_f64", "lanp_similarity_f32", "lanp_similarity_f64", "lanp_solve"):
            k = devices.kernel_attributes(cupy_backend.kernel(name, i))
            print(f"  {name}: {k.static_shared} B static shared, {k.registers} registers/thread; dynamic "
                  f"shared <= {limits.dynamic_shared_default(dev, k)} B without opt-in, "
                  f"<= {limits.dynamic_shared_max(dev, k)} B with; {limits.blocks_per_sm(dev, k, plan.BLOCK)} "
                  f"blocks/SM at {plan.BLOCK} threads")
        fused_k = devices.kernel_attributes(cupy_backend.kernel("lanp_fused_f32", i))
        fused, _, smem = plan.split_fused(list(range(1, plan.FUSED_MAX_L + 1)), 0, dev, fused_k)
        print(f"  longest dense video fused: L = {len(fused)} ({smem} B dynamic shared); "
              f"memory budget {devices.cupy_budget() / 1e9:.2f} GB (free + cupy pool, halved)")
EOF

echo "== GPU tests (pytest -m gpu) and host/simulator kernel tests"
"$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests/kernels/test_gpu.py tests/kernels/test_seeds.py tests/kernels/test_terms.py 2>&1 | tee "$WORK/gpu_tests.txt"
GPU_RC=${PIPESTATUS[0]}
"$PY" -m pytest -q -p no:cacheprovider tests/kernels/test_cuda_host.py tests/kernels/test_cuda_plan.py tests/kernels/test_cupy_backend_host.py tests/kernels/test_numba_cuda_sim.py 2>&1 | tail -3 | tee "$WORK/host_tests.txt"
HOST_RC=${PIPESTATUS[0]}

echo "== GPU benchmark"
"$PY" bench/gpu_bench.py "$@" --out "$WORK/bench.md" 2>&1 | tee "$WORK/bench.txt"
BENCH_RC=${PIPESTATUS[0]}

echo
echo "== summary"
echo "| check | result |"
echo "|---|---|"
echo "| gpu tests | rc=$GPU_RC: $(tail -1 "$WORK/gpu_tests.txt") |"
echo "| host + simulator tests | rc=$HOST_RC: $(tail -1 "$WORK/host_tests.txt") |"
echo "| benchmark | rc=$BENCH_RC |"
echo "| device planned with | $(head -1 "$WORK/attributes.txt") |"
echo
if [ -s "$WORK/bench.md" ]; then cat "$WORK/bench.md"; fi
exit $(( GPU_RC != 0 && GPU_RC != 5 || HOST_RC != 0 || BENCH_RC != 0 ))
