"""Convergence on the noisy shapes world: baseline vs MIRO vs post-hoc filtering vs single-reward specialists.

Every variant trains on the same scored world with the same model, budget and seed; each checkpoint
(every --eval-every steps) is sampled on a fixed set of ShapesEval prompts and scored with ShapesEval
and the built-in rewards. Prints the speed-up as the paper defines it, per metric:
    baseline's final step / first step at which MIRO reaches the baseline's final score.
Writes OUT/convergence.json and OUT/convergence_<metric>.png. A benchmark, not a test.

    .venv/bin/python bench/convergence.py --minutes 30
    .venv/bin/python bench/convergence.py --steps 1200 --eval-every 200 --variants baseline,miro
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mirokit.world import experiment as X
from mirokit.evaluate import report
from mirokit.train.checkpoint import list_checkpoints
from mirokit.world.prompts import load_shapes_eval

METRICS = ["shapes_eval", *X.WORLD_REWARDS]


def variants_of(names: list[str]) -> dict[str, list[str]]:
    """name -> reward keys; 'filtered' is a no-reward model trained on the top 25% by mean reward."""
    table = {"baseline": [], "miro": list(X.WORLD_REWARDS), "filtered": []}
    table.update({f"only_{k.removeprefix('world_')}": [k] for k in X.WORLD_REWARDS})
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"unknown variant {unknown[0]!r}; known: {', '.join(table)}")
    return {n: table[n] for n in names}


def probe_seconds_per_step(exp: X.ExperimentConfig, dataset) -> float:
    """Time a short 1-thread training (the same process layout as the real runs use per variant)."""
    import torch

    probe = X.ExperimentConfig(**{**vars(exp), "steps": 25, "out_dir": str(Path(exp.out_dir) / "probe")})
    torch.set_num_threads(1)
    start = time.perf_counter()
    X.train_variant("probe", dataset, [], probe, extra=["train.progress=false", "train.checkpoint_every=0"])
    return (time.perf_counter() - start) / 25


def evaluate_run(name: str, keys: list[str], run_dir: Path, meta: list[dict], exp: X.ExperimentConfig) -> list[dict]:
    """ShapesEval + mean rewards of every checkpoint of one run."""
    captions = [m["prompt"] for m in meta]
    rows = []
    for ckpt in list_checkpoints(run_dir):
        high = {k: 1.0 for k in keys}
        low = {k: 0.0 for k in keys}
        images = X.sample_prompts(ckpt, captions, exp, rewards=high, negative=low)
        summary, _ = X.evaluate_samples(images, meta)
        rows.append({"step": int(ckpt.name.split("_")[1]), "shapes_eval": summary["overall"],
                     **X.mean_rewards(images, captions)})
        print(f"  {name} step {rows[-1]['step']}: " + ", ".join(f"{m} {rows[-1][m]:.3f}" for m in METRICS), flush=True)
    return rows


def speedup(baseline: list[dict], miro: list[dict], metric: str) -> tuple[float | None, int | None]:
    """(baseline final step / first MIRO step reaching the baseline's final score, that step)."""
    target, final_step = baseline[-1][metric], baseline[-1]["step"]
    for row in miro:
        if row[metric] >= target:
            return final_step / row["step"], row["step"]
    return None, None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="total budget; sets --steps when it is not given")
    p.add_argument("--steps", type=int, default=None, help="training steps per variant")
    p.add_argument("--eval-every", type=int, default=200, help="checkpoint/evaluation interval in steps")
    p.add_argument("--variants", default="baseline,miro,filtered,only_alignment,only_quality,only_composition")
    p.add_argument("--samples", type=int, default=12000, help="world samples")
    p.add_argument("--eval-prompts", type=int, default=64, help="ShapesEval prompts per evaluation")
    p.add_argument("--sample-steps", type=int, default=12, help="ODE steps per sample")
    p.add_argument("--guidance", type=float, default=3.0, help="joint guidance scale")
    p.add_argument("--out", default="bench_out/convergence", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    variants = variants_of(args.variants.split(","))
    start = time.perf_counter()
    exp = X.ExperimentConfig(out_dir=args.out, num_samples=args.samples, eval_prompts=args.eval_prompts,
                             sample_steps=args.sample_steps, guidance=args.guidance, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("building and scoring the world ...", flush=True)
    dataset = X.build_world(exp)
    if args.steps is None:
        per_step = probe_seconds_per_step(exp, dataset)
        # two runs side by side; keep ~35% of the budget for evaluation
        steps = int(args.minutes * 60 * 0.65 * 2 / (len(variants) * per_step))
        args.steps = max(args.eval_every, steps // args.eval_every * args.eval_every)
        print(f"probe: {per_step:.3f} s/step -> {args.steps} steps per variant", flush=True)
    exp.steps = args.steps
    extra = {}
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
        X.train_in_parallel(pair, exp, dataset, extra={n: [*ckpt, *extra.get(n, [])] for n in pair})
    prompts = load_shapes_eval()
    order = np.random.default_rng(args.seed).permutation(len(prompts))
    meta = [prompts[i] for i in order[:args.eval_prompts]]
    results = {n: evaluate_run(n, keys, out / "runs" / n, meta, exp) for n, keys in variants.items()}
    table = {}
    if "baseline" in results and "miro" in results:
        for metric in METRICS:
            factor, step = speedup(results["baseline"], results["miro"], metric)
            table[metric] = {"baseline_final": results["baseline"][-1][metric], "miro_final": results["miro"][-1][metric],
                             "miro_step_reaching_baseline_final": step, "speedup": factor}
    for metric in METRICS:
        report.plot_curves({n: ([r["step"] for r in rows], [r[metric] for r in rows]) for n, rows in results.items()},
                           out / f"convergence_{metric}.png", xlabel="step", ylabel=metric, title=metric)
    (out / "convergence.json").write_text(json.dumps({"settings": vars(args), "results": results, "speedup": table,
                                                      "seconds": time.perf_counter() - start}, indent=1))
    print(f"\n{'metric':20s} {'baseline final':>15s} {'MIRO final':>11s} {'MIRO step':>10s} {'speed-up':>9s}")
    for metric, row in table.items():
        sp = f"{row['speedup']:.2f}x" if row["speedup"] else "not reached"
        print(f"{metric:20s} {row['baseline_final']:15.3f} {row['miro_final']:11.3f} "
              f"{str(row['miro_step_reaching_baseline_final']):>10s} {sp:>9s}")
    print(f"\n{time.perf_counter() - start:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
