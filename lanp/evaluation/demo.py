"""End-to-end demo on seeded synthetic data: synth -> propagate -> train -> score -> evaluate -> plot.

A training set and a test set are drawn from one synthetic "world" (shared scenes and anomaly types,
different videos). The training videos' labels are never used: pseudo-labels come from normality
propagation. The test ground truth is used only by evaluate and plot. Each step prints the
equivalent ``lanp`` command.

The detector, batch (30 videos x 32 snippets) and RMSprop momentum are the paper's; to stay well
under two minutes on 2 CPU cores the demo trains 50 epochs at lr 1e-3 instead of 300 at 1e-4.
"""
from __future__ import annotations

import time


def run_demo(workdir="lanp_demo", train_videos: int = 120, test_videos: int = 60, epochs: int = 50,
             lr: float = 1e-3, seed: int = 0, device: str = "cpu", quiet: bool = True, log=print) -> dict:
    import numpy as np

    from lanp.data.groundtruth import read_groundtruth
    from lanp.evaluation.metrics import evaluate
    from lanp.runners.file import label_file, write_labels
    from lanp.evaluation.plots import plot_roc, plot_video
    from lanp.evaluation.metrics import pooled
    from lanp.model.score import read_scores, score_file
    from lanp.data.synth import make_synthetic, write_synthetic
    from lanp.model.train import TrainConfig, train

    from lanp.model.train import resolve_device
    from lanp.outputs import check_output

    # every option before the first file is written
    config = TrainConfig(epochs=epochs, lr=lr, seed=seed)
    config.check()
    resolve_device(device)
    for name, value in (("train_videos", train_videos), ("test_videos", test_videos)):
        if isinstance(value, bool) or int(value) != value or not 2 <= value <= 100_000:
            raise ValueError(f"{name}={value!r} is invalid: it must be an integer in [2, 100000]")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid: it must be an integer >= 0")
    work = check_output(workdir, "--workdir", folder=True)
    work.mkdir(parents=True, exist_ok=True)
    p = {k: work / f for k, f in dict(train="train.h5", train_gt="train.gt.h5", test="test.h5", test_gt="test.gt.h5",
                                      labels="train.labels.h5", model="model.pt", scores="test.scores.h5",
                                      roc="roc.png").items()}
    t0 = time.perf_counter()

    def step(msg):
        log(f"[{time.perf_counter() - t0:5.1f} s] {msg}")

    step(f"lanp synth --out {p['train']} --videos {train_videos} --seed {seed}   (and the test set, seed {seed + 1})")
    write_synthetic(make_synthetic(num_videos=train_videos, seed=seed, world_seed=seed, prefix="train"),
                    p["train"], p["train_gt"])
    write_synthetic(make_synthetic(num_videos=test_videos, seed=seed + 1, world_seed=seed, prefix="test"),
                    p["test"], p["test_gt"])

    step(f"lanp propagate --features {p['train']} --out {p['labels']}")
    out = label_file(p["train"], None, progress=not quiet)          # the paper recipe
    write_labels(p["labels"], out, p["train"])

    step(f"lanp train --features {p['train']} --labels {p['labels']} --out {p['model']} --epochs {epochs} --lr {lr:g}")
    summary = train(p["train"], p["labels"], p["model"], config, device=device, quiet=quiet)

    step(f"lanp score --model {p['model']} --features {p['test']} --out {p['scores']}")
    score_file(p["model"], p["test"], p["scores"], device=device, quiet=quiet)

    step(f"lanp evaluate --scores {p['scores']} --gt {p['test_gt']}")
    scores, gt = read_scores(p["scores"]), read_groundtruth(p["test_gt"])
    result = evaluate(scores, gt)

    abnormal = [vid for vid in scores if gt[vid].any()]
    video = abnormal[0] if abnormal else next(iter(scores))
    p["video_plot"] = work / f"{video}.png"
    step(f"lanp plot --scores {p['scores']} --gt {p['test_gt']} --video {video} --out {p['video_plot']}   (and --roc)")
    rows, _ = pooled(scores, gt)
    plot_video(*[r for r in rows if r[0] == video][0][1:], p["video_plot"], title=f"{video} (synthetic test video)")
    plot_roc(np.concatenate([r[2] for r in rows]), np.concatenate([r[1] for r in rows]), p["roc"])

    seconds = time.perf_counter() - t0
    log(f"\nframe-level ROC-AUC {result['auc']:.4f}, AP {result['ap']:.4f} on {result['videos']} synthetic test "
        f"videos ({result['abnormal_videos']} abnormal); training loss {summary['first_loss']:.3f} -> "
        f"{summary['final_loss']:.3f}; {seconds:.1f} s in all\n"
        f"figures: {p['video_plot']}  {p['roc']}")
    return {"auc": result["auc"], "ap": result["ap"], "seconds": seconds, "metrics": result,
            "paths": {k: str(v) for k, v in p.items()}}
