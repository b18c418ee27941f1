"""Convergence on the demo's shapes world: baseline vs MIRO vs post-hoc filtering vs single-reward specialists,
and the paper's 2x2 of synthetic captions (baseline_synthetic, miro_synthetic: half of the steps draw the world
detector captioner's caption, with its own scores; every variant then shares one calibration of both captions).

Every variant trains on the same scored world (the demo's: mirokit.world.sampling.demo_world_config, encoded
by the shipped world autoencoder) with the same model, budget and seed; each checkpoint (every --eval-every
steps) is sampled on a fixed, task-balanced set of ShapesEval prompts and scored with ShapesEval and the
built-in rewards, each with a 95% interval. Prints the speed-up as the paper defines it, per metric:
    baseline's final step / first step at which MIRO's interval lies above the baseline's final score,
and the first step where MIRO's mean does. Writes OUT/convergence.json and OUT/convergence_<metric>.png.
A benchmark, not a test.

    .venv/bin/python bench/convergence.py --steps 2000 --eval-every 400 --variants baseline,miro
    .venv/bin/python bench/convergence.py --steps 1200 --eval-every 200      # the six variants without synthetic
    .venv/bin/python bench/convergence.py --steps 3000 --eval-every 500 \
        --variants baseline,miro,baseline_synthetic,miro_synthetic                # the 2x2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mirokit.evaluate.pages import plot_ci_curves, write_json
from mirokit.train.checkpoint import list_checkpoints
from mirokit.world import experiment as X
from mirokit.world.prompts import load_shapes_eval

METRICS = ["shapes_eval", *X.WORLD_REWARDS]


def variants_of(names: list[str]) -> dict[str, list[str]]:
    """name -> reward keys; 'filtered' is a no-reward model trained on the top 25% by mean reward, only_X a
    single-reward MIRO (a specialist), no_X MIRO with reward X left out."""
    table = {"baseline": [], "miro": list(X.WORLD_REWARDS), "filtered": [], "baseline_synthetic": [],
             "miro_synthetic": list(X.WORLD_REWARDS)}
    table.update({f"only_{k.removeprefix('world_')}": [k] for k in X.WORLD_REWARDS})
    table.update({f"no_{k.removeprefix('world_')}": [r for r in X.WORLD_REWARDS if r != k] for k in X.WORLD_REWARDS})
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"unknown variant {unknown[0]!r}; known: {', '.join(table)}")
    return {n: table[n] for n in names}


def evaluate_run(name: str, keys: list[str], run_dir: Path, meta: list[dict], exp: X.ExperimentConfig) -> list[dict]:
    """ShapesEval + mean rewards (95% intervals) of every checkpoint of one run."""
    captions = [m["prompt"] for m in meta]
    ids = list(range(len(meta)))
    # guided away from the unconditional branch (rewards missing), as the demo's "miro" row
    high, low = {k: 1.0 for k in keys}, {k: None for k in keys}
    rows = []
    for ckpt in list_checkpoints(run_dir):
        images = X.sample_prompts(ckpt, captions, exp, rewards=high, negative=low)
        summary = X.summarize_samples(X.evaluate_samples(images, meta), ids)
        rewards = X.score_images(images, captions, X.WORLD_REWARDS, workers=exp.workers)
        from mirokit.evaluate.stats import mean_ci

        rows.append({"step": int(ckpt.name.split("_")[1]), "shapes_eval": summary["shapes_eval"],
                     **{k: mean_ci(v) for k, v in rewards.items()}})
        print(f"  {name} step {rows[-1]['step']}: " + ", ".join(
            f"{m} {rows[-1][m]['mean']:.3f}±{rows[-1][m]['half_width']:.3f}" for m in METRICS), flush=True)
    return rows


def speedup(baseline: list[dict], miro: list[dict], metric: str) -> dict:
    """Steps at which MIRO first reaches the baseline's final score: by its mean, and with its whole interval."""
    target, final_step = baseline[-1][metric]["mean"], baseline[-1]["step"]
    by_mean = next((r["step"] for r in miro if r[metric]["mean"] >= target), None)
    by_interval = next((r["step"] for r in miro if r[metric]["low"] > target), None)
    return {"baseline_final": target, "miro_final": miro[-1][metric]["mean"], "step_mean_reaches": by_mean,
            "step_interval_above": by_interval, "speedup_mean": final_step / by_mean if by_mean else None,
            "speedup_interval": final_step / by_interval if by_interval else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1200, help="training steps per variant")
    p.add_argument("--eval-every", type=int, default=200, help="checkpoint/evaluation interval in steps")
    p.add_argument("--variants", default="baseline,miro,filtered,only_alignment,only_quality,only_composition")
    p.add_argument("--samples", type=int, default=8000, help="world samples")
    p.add_argument("--eval-prompts", type=int, default=276, help="ShapesEval prompts per evaluation (task-balanced)")
    p.add_argument("--sample-steps", type=int, default=6, help="ODE steps per sample (the demo's 6)")
    p.add_argument("--solver", default="ab2", help="ODE solver (the demo's AB2)")
    p.add_argument("--guidance", type=float, default=3.0, help="joint guidance scale")
    p.add_argument("--out", default="bench_out/convergence", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    variants = variants_of(args.variants.split(","))
    start = time.perf_counter()
    exp = X.ExperimentConfig(out_dir=args.out, num_samples=args.samples, seed=args.seed,
                             sampling={"solver": args.solver, "steps": args.sample_steps, "guidance": args.guidance},
                             steps=args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("building, scoring and encoding the world ...", flush=True)
    synthetic = [n for n in variants if n.endswith("_synthetic")]
    dataset, latents = X.build_world(exp, synthetic=bool(synthetic))
    _, data = X.data_overrides(exp, dataset, latents)
    extra = {n: X.synthetic_overrides(exp, dataset) for n in synthetic}
    if "filtered" in variants:
        mean_reward = np.nanmean(dataset.batch(list(range(len(dataset))), X.WORLD_REWARDS).rewards.numpy(), axis=1)
        keep = np.argsort(-mean_reward, kind="stable")[: len(dataset) // 4]
        (out / "filtered_indices.json").write_text(json.dumps(sorted(int(i) for i in keep)))
        extra["filtered"] = [f"data.subset={out / 'filtered_indices.json'}"]
    ckpt = [f"train.checkpoint_every={args.eval_every}", "train.keep_checkpoints=0"]
    names = list(variants)
    for i in range(0, len(names), 2):
        pair = {n: variants[n] for n in names[i:i + 2]}
        print(f"training {', '.join(pair)} ({args.steps} steps) ...", flush=True)
        X.train_in_parallel(pair, exp, data, extra={n: [*ckpt, *extra.get(n, [])] for n in pair})
    prompts = load_shapes_eval()
    meta = [prompts[i] for i in np.linspace(0, len(prompts) - 1, args.eval_prompts).round().astype(int)]
    results = {n: evaluate_run(n, keys, out / "runs" / n, meta, exp) for n, keys in variants.items()}
    table = ({m: speedup(results["baseline"], results["miro"], m) for m in METRICS}
             if "baseline" in results and "miro" in results else {})
    arms = ({n: {m: speedup(results["baseline"], rows, m) for m in METRICS} for n, rows in results.items()
             if n != "baseline"} if "baseline" in results else {})
    if synthetic:
        agree = np.mean([a == b for a, b in zip(dataset.captions, dataset.synthetic[0])])
        print(f"synthetic captions equal to the world's: {agree:.1%} (the world's are ~40% wrong; the detector's "
              "are limited to what it sees)")
    for metric in METRICS:
        plot_ci_curves({n: ([r["step"] for r in rows], [r[metric] for r in rows]) for n, rows in results.items()},
                       out / f"convergence_{metric}.png", xlabel="step", ylabel=metric, title=metric)
    write_json(out / "convergence.json", {"settings": vars(args), "results": results, "speedup": table, "arms": arms,
                                          "seconds": time.perf_counter() - start})
    print(f"\n{'metric':18s} {'baseline final':>14s} {'MIRO final':>10s} {'mean reaches':>12s} {'interval above':>14s} "
          f"{'speed-up (mean / interval)':>26s}")
    for metric, row in table.items():
        ups = " / ".join("-" if v is None else f"{v:.1f}x" for v in (row["speedup_mean"], row["speedup_interval"]))
        print(f"{metric:18s} {row['baseline_final']:14.3f} {row['miro_final']:10.3f} "
              f"{str(row['step_mean_reaches']):>12s} {str(row['step_interval_above']):>14s} {ups:>26s}")
    if arms:  # every arm against the baseline's final score ("never" where it does not reach it)
        print(f"\n{'arm':18s} " + " ".join(f"{m:>18s}" for m in METRICS))
        for name, row in arms.items():
            cells = [f"{r['speedup_mean']:.1f}x @{r['step_mean_reaches']}" if r["speedup_mean"] else "never"
                     for r in (row[m] for m in METRICS)]
            print(f"{name:18s} " + " ".join(f"{c:>18s}" for c in cells))
    print(f"\n{time.perf_counter() - start:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
