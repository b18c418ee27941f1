"""Diversity and test-time scaling on the demo's shapes world (issue 38). A benchmark, not a test.

Trains, like bench/convergence.py and with its helpers (the same scored world, model, steps and seed; two runs
at a time, one core each): the no-reward baseline, MIRO (all three world rewards), the filtered baseline (top
25% by mean reward) and the three single-reward specialists. Then, on a task-balanced set of ShapesEval prompts:

1. diversity (mirokit.evaluate.diversity): per prompt N images from the same noise for every arm; Vendi score and
   mean pairwise cosine distance of the world autoencoder's latents (world_ae) and of the detector's parsed
   scene (world_scene), and the entropy of the attributes the prompt leaves free. Arms: baseline; MIRO at all-1
   and at the demo's reward mix (quality 0.625); filtered; the specialists (their reward at 1); the baseline's
   images after best-of-K selection by each reward (the post-hoc alternative). Every arm is guided as the demo
   (w = 3, AB2, 6 steps; MIRO-style arms away from "rewards missing").
2. test-time scaling (mirokit.evaluate.best_of_n): pools of --pool images per prompt from the baseline and MIRO,
   the exact expected best-of-N for N = 1..pool for each reward (selected by itself), and the N at which the
   baseline first matches MIRO's best-of-1.

Writes OUT/diversity/ (summary.json, diversity.jsonl, report.html), OUT/scaling.json, OUT/scaling.png and
OUT/tables.md (the two markdown tables with 95% intervals).

    .venv/bin/python bench/diversity.py --steps 2500 --out bench_out/diversity
    .venv/bin/python bench/diversity.py --models bench_out/convergence/runs --out bench_out/diversity  # reuse runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convergence import variants_of

from mirokit.evaluate.best_of_n import best_of_n, plot_scaling, scaling_table
from mirokit.evaluate.diversity import Arm, evaluate_diversity
from mirokit.evaluate.pages import fmt_ci, write_json
from mirokit.evaluate.samples import ModelRun, build_scorers, load_pipes
from mirokit.sampling import resolve
from mirokit.world import experiment as X
from mirokit.world.prompts import load_shapes_eval

VARIANTS = "baseline,miro,filtered,only_quality,only_alignment,only_composition"
FEATURES = ("world_ae", "world_scene")


def train(args, variants: dict[str, list[str]], exp: X.ExperimentConfig) -> Path:
    """Train every variant as bench/convergence.py does -> the runs folder."""
    out = Path(args.out)
    print("building, scoring and encoding the world ...", flush=True)
    dataset, latents = X.build_world(exp)
    _, data = X.data_overrides(exp, dataset, latents)
    extra = {}
    if "filtered" in variants:
        mean_reward = np.nanmean(dataset.batch(list(range(len(dataset))), X.WORLD_REWARDS).rewards.numpy(), axis=1)
        keep = np.argsort(-mean_reward, kind="stable")[: len(dataset) // 4]
        (out / "filtered_indices.json").write_text(json.dumps(sorted(int(i) for i in keep)))
        extra["filtered"] = [f"data.subset={out / 'filtered_indices.json'}"]
    names = list(variants)
    for i in range(0, len(names), 2):
        pair = {n: variants[n] for n in names[i:i + 2]}
        print(f"training {', '.join(pair)} ({args.steps} steps) ...", flush=True)
        X.train_in_parallel(pair, exp, data, extra={n: extra.get(n, []) for n in pair})
    return out / "runs"


def run_for(name: str, pipe, exp: X.ExperimentConfig, rewards: dict, negative: dict) -> ModelRun:
    """A ModelRun sampled as the demo samples (targets only of the keys the model knows)."""
    keys = set(pipe.reward_keys)
    settings = resolve({**exp.sampling, "rewards": {k: v for k, v in rewards.items() if k in keys},
                        "negative_rewards": {k: v for k, v in negative.items() if k in keys},
                        "seed": exp.seed, "batch_size": 256})
    return ModelRun(name=name, pipe=pipe, settings=settings,
                    record={"rewards": settings.rewards, "negative": settings.negative_rewards})


def diversity_markdown(summary: dict) -> list[str]:
    """The diversity table: one row per arm, mean [95% CI] over prompts (paired difference to the baseline)."""
    cols = [("features", "world_ae", "vendi"), ("features", "world_scene", "vendi"),
            ("features", "world_ae", "cosine_distance"), ("entropy", "world_scene.position"),
            ("entropy", "world_scene.size"), ("entropy", "world_scene.colour")]
    head = ["arm", "Vendi (latents)", "Vendi (scene)", "cos dist (latents)", "H(position)", "H(size)", "H(colour)",
            "Vendi (latents) vs baseline"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in summary["models"].items():
        cells = []
        for c in cols:
            ci = m
            for key in c:
                ci = ci[key]
            cells.append(fmt_ci(ci, 3 if c[0] == "features" else 2))
        diff = fmt_ci(m["vs_first"]["features"]["world_ae"]["vendi"], 3) if "vs_first" in m else "-"
        lines.append("| " + " | ".join([name, *cells, diff]) + " |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2500, help="training steps per variant")
    p.add_argument("--samples", type=int, default=8000, help="world samples")
    p.add_argument("--models", default=None, help="a runs folder holding VARIANT/model for every variant (no training)")
    p.add_argument("--prompts", type=int, default=96, help="ShapesEval prompts (task-balanced) for diversity")
    p.add_argument("--images", type=int, default=8, help="images per prompt for diversity (N)")
    p.add_argument("--best-of", type=int, default=8, help="K of the baseline's best-of-K selection arms")
    p.add_argument("--scaling-prompts", type=int, default=48, help="ShapesEval prompts for test-time scaling")
    p.add_argument("--pool", type=int, default=128, help="samples per prompt for test-time scaling")
    p.add_argument("--out", default="bench_out/diversity")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = variants_of(VARIANTS.split(","))
    exp = X.ExperimentConfig(out_dir=args.out, num_samples=args.samples, seed=args.seed,
                             sampling={"solver": "ab2", "steps": 6, "guidance": 3.0}, steps=args.steps)
    runs_dir = Path(args.models) if args.models else train(args, variants, exp)
    trained = time.perf_counter()
    pipes = load_pipes({n: str(runs_dir / n / "model") for n in variants})
    high = {k: 1.0 for k in X.WORLD_REWARDS}
    missing = {k: None for k in X.WORLD_REWARDS}
    runs = {n: run_for(n, pipes[n], exp, high, missing) for n in variants}
    runs["miro, quality 0.625"] = run_for("miro, quality 0.625", pipes["miro"], exp,
                                          high | {"world_quality": 0.625}, missing)
    order = ["baseline", "miro", "miro, quality 0.625", "filtered", "only_quality", "only_alignment",
             "only_composition"]
    arms = [Arm(name=n, run=runs[n]) for n in order]
    arms += [Arm(name=f"baseline best-of-{args.best_of} {k.removeprefix('world_')}", run=runs["baseline"], select=k,
                 best_of=args.best_of) for k in X.WORLD_REWARDS]
    prompts = load_shapes_eval()
    pick = np.linspace(0, len(prompts) - 1, args.prompts).round().astype(int)
    records = [prompts[i] for i in pick]
    scorers = build_scorers(list(X.WORLD_REWARDS))
    from mirokit.evaluate.features import build_extractor

    extractors = {k: build_extractor(k) for k in FEATURES}
    print(f"diversity: {len(arms)} arms x {args.prompts} prompts x {args.images} images ...", flush=True)
    div = evaluate_diversity(arms, records, list(range(len(records))), extractors, images_per_prompt=args.images,
                             out_dir=out / "diversity", scorers=scorers, extractor_specs={k: {} for k in FEATURES})
    write_json(out / "diversity" / "summary.json", div)
    diversity_done = time.perf_counter()
    print(f"test-time scaling: baseline and miro, {args.scaling_prompts} prompts x pool {args.pool} ...", flush=True)
    pick = np.linspace(0, len(prompts) - 1, args.scaling_prompts).round().astype(int)
    srecords = [prompts[i] for i in pick]
    scaling, _ = best_of_n([runs["miro"], runs["baseline"]], srecords, list(range(len(srecords))), scorers,
                           select=list(X.WORLD_REWARDS), pool=args.pool, reference="miro")
    write_json(out / "scaling.json", scaling)
    plot_scaling(scaling["scaling"], out / "scaling.png")
    end = time.perf_counter()
    lines = [f"diversity: {args.prompts} ShapesEval prompts x {args.images} images, 95% t-intervals over prompts", "",
             *diversity_markdown(div), ""]
    head, rows = scaling_table(scaling["scaling"], ns=sorted({1, 2, 4, 8, 16, 32, 64, args.pool}))
    lines += [f"test-time scaling: {args.scaling_prompts} prompts x pool {args.pool}; exact expected best-of-N, "
              "95% t-intervals over prompts", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
              *("| " + " | ".join(str(c) for c in r) + " |" for r in rows), ""]
    for key, comp in scaling["scaling"].items():
        v = comp["vs_reference"]["baseline"]
        lines.append(f"- {key}: MIRO best-of-1 {fmt_ci(comp['reference_best_of_1'], 3)}; baseline best-of-{v['pool']} "
                     f"minus MIRO best-of-1 (paired) {fmt_ci(v['at_pool'], 3)}; mean reaches at N = {v['first_n']}, "
                     f"not significantly below from N = {v['first_n_not_below']}")
    timing = {"train_s": trained - start, "diversity_s": diversity_done - trained, "scaling_s": end - diversity_done,
              "total_s": end - start}
    lines += ["", f"wall time: {json.dumps({k: round(v) for k, v in timing.items()})}"]
    (out / "tables.md").write_text("\n".join(lines) + "\n")
    write_json(out / "timing.json", {**timing, "settings": vars(args)})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
