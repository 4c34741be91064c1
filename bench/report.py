"""Turn a pytest-benchmark JSON of bench/ into the tables of bench/RESULTS.md and bench/sweeps.png.

    python bench/report.py out.json [more.json ...] [--results bench/RESULTS.md] [--plot bench/sweeps.png]
                           [--stdout]

Several JSON files (e.g. the quick run and a ``--full`` run of test_bench_ucffull.py) are merged;
UCF-full rows are grouped per feature size D; the header lists every run's date, commit and load.

The generated part of RESULTS.md sits between the markers ``<!-- results:begin -->`` and
``<!-- results:end -->``; the hand-written text around them is kept.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
HERE = Path(__file__).resolve().parent

GOALS = [  # (description, group, kind, threshold)
    ("UCF-32 lanp kernel <= 30 ms", "ucf32", "time", 0.030),
    ("UCF-32 >= 100x faster than peer (c)", "ucf32", "peer (c)", 100.0),
    ("UCF-32 >= 5x faster than peer (a)", "ucf32", "peer (a)", 5.0),
    ("UCF-full shape >= 50x faster than peer (c)", "ucf-full", "peer (c)", 50.0),
]


def fmt_time(s: float) -> str:
    if s >= 1.0:
        return f"{s:.2f} s"
    return f"{s * 1e3:.1f} ms"


def load(path):
    with open(path) as f:
        return json.load(f)


def by_group(data):
    groups = {}
    for b in data["benchmarks"]:
        g = b["group"]
        if g == "ucf-full":
            g = f"ucf-full D={b['extra_info'].get('dim')}"
        groups.setdefault(g, []).append(b)
    return groups


def merge(runs):
    """One dict with every run's benchmarks; machine_info of the first, all runs kept in 'runs'."""
    out = dict(runs[0])
    out["benchmarks"] = [b for r in runs for b in r["benchmarks"]]
    out["runs"] = runs
    return out


def ucf_full_groups(groups):
    """UCF-full group names, largest D first."""
    return sorted((g for g in groups if g.startswith("ucf-full")), key=lambda g: -int(g.split("=")[1]))


def lanp_reference(benches):
    """The group's reference lanp run: the first lanp benchmark (test_lanp / test_lanp_banded)."""
    for b in benches:
        if b["extra_info"].get("impl") == "lanp" and "rms" not in b["name"]:
            return b
    return None


def run_info(r) -> dict:
    """lanp's run conditions (output_json["lanp"]; older files kept them in machine_info)."""
    return r.get("lanp") or {k.replace("lanp_", ""): v for k, v in r["machine_info"].items()}


def header(data) -> list:
    m = dict(data["machine_info"])
    m.update(run_info(data))
    cpu = m.get("cpu", {})
    lines = [
        f"- machine: {cpu.get('brand_raw', m.get('processor', '?'))}, {m.get('cpu_count', '?')} cores "
        f"(numba threads {m.get('numba_threads', '?')}), {m.get('system', '')} {m.get('release', '')}, "
        f"Python {m.get('python_version', '?')}",
    ]
    for r in data.get("runs", [data]):
        rm, c = run_info(r), r.get("commit_info", {})
        date = r.get("datetime", "")
        try:
            date = datetime.fromisoformat(date.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            pass
        names = sorted({b["group"] for b in r["benchmarks"]})
        lines.append(
            f"- run ({', '.join(names)}): {date}; commit {rm.get('commit') or c.get('id', '?')[:10]}; "
            f"size **{rm.get('mode', '?')}**; load average (1, 5, 15 min) at start "
            + ", ".join(f"{x:.2f}" for x in (rm.get("loadavg_start") or []))
            + ", at end " + ", ".join(f"{x:.2f}" for x in (rm.get("loadavg_end") or [])))
    return lines


def floors_table(groups) -> list:
    out = ["| floor | measured | how |", "|---|---|---|"]
    if not groups.get("floors"):
        for g, benches in groups.items():
            for b in benches:
                e = b["extra_info"]
                if "bandwidth" in e and "gemm_rate" in e:
                    out.append(f"| read bandwidth / GEMM (as used for {g}) | {e['bandwidth'] / 1e9:.1f} GB/s / "
                               f"{e['gemm_rate'] / 1e9:.0f} GFLOP/s | measured once in that run |")
                    break
        return out
    for b in groups.get("floors", []):
        e = b["extra_info"]
        if "gbytes_per_s" in e:
            out.append(f"| read bandwidth | {e['gbytes_per_s']:.1f} GB/s | parallel float32 sum of "
                       f"{e['bytes'] / 2 ** 30:.0f} GiB (best of 5) |")
        if "gflops" in e:
            out.append(f"| float32 GEMM | {e['gflops']:.0f} GFLOP/s | numpy matmul 2048^3 (best round) |")
    adjacent = [b["extra_info"]["bandwidth"] for benches in groups.values() for b in benches
                if b["extra_info"].get("impl") == "lanp" and "bandwidth_session" in b["extra_info"]]
    if adjacent:
        out.append(f"| read bandwidth right after each lanp benchmark | {min(adjacent) / 1e9:.1f} - "
                   f"{max(adjacent) / 1e9:.1f} GB/s | 256 MiB, best of 3; the memory floors use these |")
        if max(adjacent) > 1.25 * min(adjacent):
            out.append("")
            out.append(f"**The machine's speed drifted during this run** (read bandwidth "
                       f"{min(adjacent) / 1e9:.1f} - {max(adjacent) / 1e9:.1f} GB/s between benchmarks): "
                       "compare times only within one table row's neighbours, or rerun.")
    return out


def workload_table(benches) -> list:
    ref = lanp_reference(benches)
    t_ref = ref["stats"]["median"] if ref else None
    out = ["| implementation | settings / check | median | min | rounds | lanp faster by | "
           "floor fraction |",
           "|---|---|---|---|---|---|---|"]
    for b in benches:
        e, s = b["extra_info"], b["stats"]
        if e.get("impl", "").startswith("lanp"):
            note = e.get("settings", "")
            frac = (f"{e['floor_fraction']:.2f} (floor {fmt_time(e['floor_s'])} at "
                    f"{e['bandwidth'] / 1e9:.1f} GB/s read, {e['bound']}-bound; "
                    f"{e['gbytes_per_s']:.1f} GB/s, {e['gflops']:.0f} GFLOP/s)") if "floor_fraction" in e else ""
            ratio = "1 (reference)" if b is ref else (f"{s['median'] / t_ref:.2f}x slower" if t_ref else "")
            if b is not ref and t_ref:
                ratio = f"takes {s['median'] / t_ref:.2f}x the reference's time"
        else:
            note = f"{e.get('check', '')}: {e.get('check_error', float('nan')):.1e}"
            if "iterations_median" in e:
                note += f"; median {e['iterations_median']:.0f} iterations"
            frac = ""
            ratio = f"**{s['median'] / t_ref:.0f}x**" if t_ref else ""
        out.append(f"| {e.get('impl', b['name'])} | {note} | {fmt_time(s['median'])} | {fmt_time(s['min'])} | "
                   f"{s['rounds']} | {ratio} | {frac} |")
    if ref:
        e = ref["extra_info"]
        out.append("")
        out.append(f"Shape: {e['videos']} videos, {e['snippets']:,} snippets, D = {e['dim']}, "
                   f"window {e['window']}; CG iterations median {e['cg_iterations_median']:.0f}, "
                   f"max {e['cg_iterations_max']}. Work counted: {e['bytes'] / 1e6:.0f} MB of features, "
                   f"{(e['gram_flops'] + e['cg_flops']) / 1e9:.2f} GFLOP.")
    return out


def sweep_tables(groups) -> list:
    out = []
    for g in ("sweep-videos", "sweep-length", "sweep-dim"):
        benches = [b for b in groups.get(g, []) if "sweep" in b["extra_info"]]
        if not benches:
            continue
        out += [f"#### {g}", "",
                "| sweep | value | videos x L x D | median | per snippet | GB/s | GFLOP/s | floor fraction |",
                "|---|---|---|---|---|---|---|---|"]
        for b in sorted(benches, key=lambda b: (b["extra_info"]["sweep"], b["extra_info"]["sweep_value"])):
            e, s = b["extra_info"], b["stats"]
            L = e["snippets"] // e["videos"]
            out.append(f"| {e['sweep']} | {e['sweep_value']} | {e['videos']} x {L} x {e['dim']} | "
                       f"{fmt_time(s['median'])} | {s['median'] / e['snippets'] * 1e6:.2f} us | "
                       f"{e['gbytes_per_s']:.1f} | {e['gflops']:.0f} | {e['floor_fraction']:.2f} |")
        out.append("")
    return out


def memory_table(groups) -> list:
    benches = groups.get("memory", [])
    if not benches:
        return []
    out = ["| what | input | resident before | peak extra RSS during the call | time |", "|---|---|---|---|---|"]
    for b in benches:
        e = b["extra_info"]
        if e.get("mode") == "stream":
            what = f"{e['impl']}, chunk_bytes {e['chunk_bytes'] / 2 ** 20:.0f} MiB, window {e['window']}"
            inp = (f"{e['feature_bytes'] / 2 ** 20:.0f} MiB of features ({e['videos']} videos, {e['snippets']:,} "
                   f"snippets, longest {e.get('max_length', '?')})")
        else:
            what = e["impl"]
            inp = f"{e['videos']} x {e['length']} x {e['dim']} ({e['input_bytes'] / 2 ** 20:.0f} MiB, in memory)"
        out.append(f"| {what} | {inp} | {e['rss_before'] / 2 ** 20:.0f} MiB | {e['rss_delta'] / 2 ** 20:.0f} MiB | "
                   f"{fmt_time(e['seconds'])} |")
    return out


def goals(groups) -> list:
    out = ["| goal | measured | met |", "|---|---|---|"]
    for text, g, kind, thr in GOALS:
        if g == "ucf-full":
            full = ucf_full_groups(groups)
            g = full[0] if full else g
            text = f"{text} ({g.split(' ')[1]})" if full else text
        benches = groups.get(g, [])
        ref = lanp_reference(benches)
        if ref is None:
            out.append(f"| {text} | not run | |")
            continue
        t = ref["stats"]["median"]
        if kind == "time":
            out.append(f"| {text} | {fmt_time(t)} | {'yes' if t <= thr else 'no'} |")
            continue
        peer = [b for b in benches if b["extra_info"].get("impl", "").startswith(kind)]
        if not peer:
            out.append(f"| {text} | not run | |")
            continue
        r = peer[0]["stats"]["median"] / t
        out.append(f"| {text} | {r:.0f}x | {'yes' if r >= thr else 'no'} |")
    return out


def render(data) -> str:
    groups = by_group(data)
    parts = ["## Latest results", ""] + header(data) + ["", "### Goals (2-core CPU, kernel time, features in memory)", ""]
    parts += goals(groups) + ["", "### Floors (measured in the same run)", ""] + floors_table(groups)
    titles = [("ucf32", "UCF-32")] + [(g, f"UCF-full shape (real UCF-Crime train lengths, banded), {g.split(' ')[1]}")
                                      for g in ucf_full_groups(groups)]
    for g, title in titles:
        if g in groups:
            parts += ["", f"### {title}", ""] + workload_table(groups[g])
    sw = sweep_tables(groups)
    if sw:
        parts += ["", "### Sweeps (lanp.kernels.propagate; plot: sweeps.png)", ""] + sw
    mem = memory_table(groups)
    if mem:
        parts += ["### Peak memory (fresh process, resident-set high-water mark)", ""] + mem
    return "\n".join(parts) + "\n"


def plot(data, path) -> bool:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = by_group(data)
    panels = [("sweep-videos", "number of videos (L = 32)"), ("sweep-length", "video length L (N fixed)"),
              ("sweep-dim", "feature size D (L = 32)")]
    if not any(groups.get(g) for g, _ in panels):
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (g, xlabel) in zip(axes, panels):
        series = {}
        for b in groups.get(g, []):
            e = b["extra_info"]
            series.setdefault(e["sweep"], []).append((e["sweep_value"], b["stats"]["median"],
                                                      e.get("floor_s", float("nan"))))
        for name, pts in sorted(series.items()):
            pts.sort()
            xs, ts, fl = zip(*pts)
            line, = ax.loglog(xs, ts, "o-", label=f"lanp {name}")
            ax.loglog(xs, fl, ":", color=line.get_color(), label=f"floor {name}")
            if g == "sweep-length":
                dim = groups[g][0]["extra_info"]["dim"]
                ax.set_title(f"N = {groups[g][0]['extra_info']['snippets']:,} snippets, D = {dim}")
            else:
                e0 = groups[g][0]["extra_info"]
                ax.set_title(f"D = {e0['dim']}" if g == "sweep-videos" else f"{e0['videos']} videos")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    m = dict(data["machine_info"])
    m.update(run_info(data))
    load = (m.get("loadavg_start") or ["?"])[0]
    fig.suptitle(f"lanp.kernels.propagate (CPU) - {m.get('cpu', {}).get('brand_raw', '')}, "
                 f"{data.get('datetime', '')[:10]}, load average {load:.2f} at start" if isinstance(load, float) else "")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="+")
    p.add_argument("--results", default=str(HERE / "RESULTS.md"))
    p.add_argument("--plot", default=str(HERE / "sweeps.png"))
    p.add_argument("--stdout", action="store_true", help="print the tables instead of editing RESULTS.md")
    args = p.parse_args(argv)
    data = merge([load(j) for j in args.json])
    text = render(data)
    if args.stdout:
        sys.stdout.write(text)
    else:
        path = Path(args.results)
        old = path.read_text() if path.exists() else f"# lanp benchmarks\n\n{BEGIN}\n{END}\n"
        if BEGIN not in old or END not in old:
            old = old.rstrip() + f"\n\n{BEGIN}\n{END}\n"
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
        print(f"wrote {path}")
    if plot(data, args.plot):
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
