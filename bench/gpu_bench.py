"""GPU timings of the lanp GPU backends vs a torch pipeline (bmm + exp + torch.linalg.solve).

Features are put in device memory first; each timing is the median of a few runs between CUDA
events after a warm-up (compile) run, and each implementation is cross-checked against the CPU
backend on the first videos before it is timed. Floors: bytes / measured copy bandwidth and
flops / measured GEMM rate (float32 and float64 GEMM, TF32 off), floor = max of the two.

    python bench/gpu_bench.py [--quick] [--out table.md]

Without cupy or a device it prints why and exits 0 (so gpu_check.sh still ends with its table).
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def device_or_reason():
    try:
        import cupy
    except Exception as exc:
        return None, f"cupy not importable ({exc})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "no CUDA device"
        props = cupy.cuda.runtime.getDeviceProperties(0)
        return props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]), ""
    except Exception as exc:
        return None, f"no usable CUDA device ({exc})"


def cuda_time(fn, repeats=5):
    """Median seconds of fn() between CUDA events (after one warm-up call)."""
    import cupy
    fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def ceilings():
    """(copy bandwidth bytes/s counting read+write, fp32 GEMM flop/s, fp64 GEMM flop/s)."""
    import cupy
    a = cupy.ones(1 << 28, dtype=cupy.float32)          # 1 GiB
    b = cupy.empty_like(a)
    t = cuda_time(lambda: cupy.copyto(b, a))
    bw = 2 * a.nbytes / t
    rates = []
    for dt in (cupy.float32, cupy.float64):
        n = 8192 if dt == cupy.float32 else 4096
        m = cupy.random.random((n, n)).astype(dt)
        t = cuda_time(lambda: m @ m, repeats=3)
        rates.append(2 * n ** 3 / t)
    return bw, rates[0], rates[1]


def work(lengths, D, window, itemsize=4):
    """(bytes, flops) of the similarity, the part that dominates: every ordered pair's squared
    distance costs 3 flops per feature (sub, mul, add) in lanp.cu; features are read once."""
    L = np.asarray(lengths, dtype=np.float64)
    pairs = L * L if window is None else L * np.minimum(2 * window + 1, L)
    graph_bytes = 0 if window is None else 8 * pairs.sum()       # long-video graph round trip
    return L.sum() * D * itemsize + graph_bytes, 3.0 * D * pairs.sum()


def torch_pipeline(x, offsets, alpha=0.99, sigma=0.1):
    """Per length bucket: unit rows, d2 by bmm, W = exp(-d2/2s^2) exp(-|i-j|/L), zero diagonal,
    S = D^-1/2 W D^-1/2, z = solve(I - alpha S, y). Dense only (the reference peer)."""
    import torch
    lengths = np.diff(offsets)
    z = torch.empty(x.shape[0], device=x.device, dtype=torch.float64)
    for L in np.unique(lengths):
        vids = np.flatnonzero(lengths == L)
        idx = torch.as_tensor((offsets[vids][:, None] + np.arange(L)[None, :]).ravel(), device=x.device)
        xb = x[idx].reshape(len(vids), int(L), -1)
        xb = xb / xb.norm(dim=2, keepdim=True)
        g = torch.bmm(xb, xb.transpose(1, 2))
        d2 = (2.0 - 2.0 * g).clamp_min(0)
        t = torch.arange(int(L), device=x.device, dtype=x.dtype)
        w = torch.exp(-d2 / (2 * sigma ** 2) - (t[:, None] - t[None, :]).abs() / L)
        w = w * (1 - torch.eye(int(L), device=x.device, dtype=x.dtype))
        dinv = w.sum(2).clamp_min(1e-30).rsqrt()
        s = dinv[:, :, None] * w * dinv[:, None, :]
        a = torch.eye(int(L), device=x.device, dtype=x.dtype) - alpha * s
        y = torch.zeros(len(vids), int(L), 1, device=x.device, dtype=x.dtype)
        y[:, 0] = 1
        y[:, -1] = 1
        z[idx] = torch.linalg.solve(a, y).reshape(-1).double()
    return z


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    p.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = p.parse_args(argv)
    name, reason = device_or_reason()
    rows = []
    if name is None:
        print(f"gpu_bench: skipped: {reason}")
        rows.append(("-", "-", "skipped", reason, "", "", ""))
        return finish(rows, args, "none")
    import cupy
    from lanp.kernels import backends, propagate
    import workloads

    bw, f32, f64 = ceilings()
    print(f"device {name}: copy {bw / 1e9:.0f} GB/s, fp32 GEMM {f32 / 1e12:.1f} TFLOP/s, "
          f"fp64 GEMM {f64 / 1e12:.1f} TFLOP/s", flush=True)
    if args.quick:
        cases = [("UCF-32 (quick)", workloads.make_packed(np.full(64, 32), 256), None),
                 ("UCF-full shape (quick)", workloads.make_packed(workloads.ucf_lengths()[:64], 256), 50)]
    else:
        cases = [("UCF-32 1610x32x2048", workloads.ucf32(), None),
                 ("UCF-full shape, window 50", workloads.ucf_full(), 50)]
    for label, (x, offsets), window in cases:
        lengths = np.diff(offsets)
        nbytes, flops = work(lengths, x.shape[1], window)
        floor = max(nbytes / bw, flops / f32)
        xd = cupy.asarray(x)
        check = min(50, len(lengths))
        ref = propagate(x[:offsets[check]], offsets[:check + 1], window=window, backend="cpu").z
        for backend in ("cupy", "numba-cuda"):
            ok, why = backends._REGISTRY[backend].available()
            if not ok:
                rows.append((label, backend, "skipped", why, "", "", ""))
                continue
            try:
                z = propagate(xd, offsets, window=window, backend=backend, warn=False).z
                zc = cupy.asnumpy(z[:offsets[check]])
                err = float(np.linalg.norm(zc - ref) / np.linalg.norm(ref))
                t = cuda_time(lambda: propagate(xd, offsets, window=window, backend=backend, warn=False), repeats=3)
                rows.append((label, backend, f"{t * 1e3:.2f} ms", f"rel err {err:.1e}",
                             f"{floor * 1e3:.3f} ms", f"{floor / t:.1%}", ""))
            except Exception as exc:                  # recorded, not a crash
                rows.append((label, backend, "failed", repr(exc)[:120], "", "", ""))
            print(rows[-1], flush=True)
        if window is None:
            try:
                import torch
                xt = torch.as_tensor(xd, device="cuda")
                zt = torch_pipeline(xt, offsets)
                err = float(np.linalg.norm(zt[:offsets[check]].cpu().numpy() * 1 - ref) / np.linalg.norm(ref))
                t = cuda_time(lambda: torch_pipeline(xt, offsets), repeats=3)
                rows.append((label, "torch bmm+exp+solve", f"{t * 1e3:.2f} ms", f"rel err {err:.1e}",
                             f"{floor * 1e3:.3f} ms", f"{floor / t:.1%}", ""))
            except Exception as exc:
                rows.append((label, "torch bmm+exp+solve", "failed", repr(exc)[:120], "", "", ""))
        else:
            rows.append((label, "torch bmm+exp+solve", "n/a", "dense solve of the longest video "
                         f"(L={int(lengths.max())}) is the peer's limit; not run", "", "", ""))
        del xd
        cupy.get_default_memory_pool().free_all_blocks()
    return finish(rows, args, name)


def finish(rows, args, device):
    head = ("workload", "implementation", "time", "check", "floor", "of floor", "")
    lines = [f"device: {device}, {datetime.date.today().isoformat()}",
             "| " + " | ".join(head[:6]) + " |", "|" + "---|" * 6]
    lines += ["| " + " | ".join(r[:6]) + " |" for r in rows]
    table = "\n".join(lines)
    if args.out:
        args.out.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
