"""Fine-tuning to a new reward on the demo's shapes world (issue 34 section 4).

The demo's three-reward MIRO model (configs/demo_world.yaml: world_alignment, world_quality, world_composition),
trained for --parent-steps, is the parent. A fourth reward, world_brightness (the background's luma, which the
three do not measure), is added by each arm for --steps steps:

    parent      the parent as it is (3 rewards; its control of the new reward is undefined: n/a)
    finetune    train.init_from=<parent> with the fourth key, every weight trained
    trainable   the same with train.trainable = the reward embedders, their position embedding and the mixer
    lora        the same with train.lora on the mixer's and the UNet's cross-attention linears (plus the new
                reward's embedder and position row, which the parent does not have: trainable)
    scratch     a four-reward model trained from scratch for the same --steps

Every run trains on one world (the demo's, encoded by the shipped world autoencoder; the decoded images scored
with all four rewards and calibrated once), one training at a time. Each model is evaluated on the same
prompts and noise:
- ShapesEval (task-balanced --eval-prompts, every reward of the model asked at 1, guided away from the trained
  unconditional branch), and all four rewards' means on those samples; 95% intervals (mirokit.evaluate.stats);
  for the four-reward arms also a row with the new reward missing (asked as the parent is);
- control: each of the model's rewards swept over the targets 0, 0.25, 0.5, 0.75, 1 (the others missing, as the
  demo's sweep) on --control-prompts other prompts; the Spearman correlation of that reward's measured means with
  the targets (the demo's "control"), with a 95% percentile interval from resampling the prompts (--bootstrap),
  and the measured difference between targets 1 and 0 with its t-interval (paired by prompt);
- the new reward's control at every --curve-every steps of each four-reward arm (when it first reaches 0.9;
  --curve-only evaluates only that).

Prints markdown tables (also OUT/finetune.md) and writes OUT/finetune.json. A benchmark, not a test.

    .venv/bin/python bench/finetune.py          # BENCHMARKS.md: P=1200, N=200, curve every 50, ~10 min on 2 cores
    .venv/bin/python bench/finetune.py --parent-steps 1500 --steps 300 --seeds 0,1 --out bench_out/finetune
    .venv/bin/python bench/finetune.py --steps 20 --parent-steps 40 --samples 512 --eval-prompts 24 \
        --control-prompts 8 --curve-every 10 --out /tmp/ft_dry                    # plumbing only (~3 min)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mirokit.evaluate.pages import write_json
from mirokit.world import experiment as X

NEW = "world_brightness"
OLD = list(X.WORLD_REWARDS)
ALL = [*OLD, NEW]
TARGETS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the demo's CONTROL_TARGETS
ARMS = ("parent", "finetune", "trainable", "lora", "scratch")
# train.trainable / train.lora patterns: globs naming a parameter or module by any dotted tail of its path (names as
# in mirokit.models.conditioning.RewardTextConditioner and the UNet's cross-attention)
TRAINABLE = ["conditioner.reward_embedders", "conditioner.reward_position", "conditioner.mixer"]
NEW_ONLY = [f"conditioner.reward_embedders.{NEW}", "conditioner.reward_position"]
LORA_TARGETS = ["conditioner.mixer", "cross_attn.ca.q", "cross_attn.ca.kv", "cross_attn.ca.out"]


def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(f"'{s}'" for s in items) + "]"


def arm_overrides(arm: str, parent: Path, lora_rank: int) -> list[str]:
    """Config overrides of a four-reward arm beyond the shared ones (train.init_from, train.trainable, train.lora)."""
    if arm == "scratch":
        return []
    out = [f"train.init_from={parent}"]
    if arm == "trainable":
        out.append(f"train.trainable={_yaml_list(TRAINABLE)}")
    elif arm == "lora":
        targets = ", ".join(f"'{t}'" for t in LORA_TARGETS)
        out += [f"train.lora={{rank: {lora_rank}, alpha: {lora_rank}, targets: [{targets}]}}",
                f"train.trainable={_yaml_list(NEW_ONLY)}"]
    return out


def build_world(exp: X.ExperimentConfig) -> tuple:
    """X.build_world with the four rewards: the demo world encoded by the shipped autoencoder, the decoded images
    scored with ALL and calibrated -> (dataset, latents, raw scores {key: (N,)})."""
    from mirokit.data.calibration import Calibration
    from mirokit.evaluate.samples import to_uint8
    from mirokit.world.ae_space import WorldAESpace
    from mirokit.world.dataset import WorldDataset
    from mirokit.world.sampling import demo_world_config

    dataset = WorldDataset(exp.num_samples, demo_world_config(exp.seed))
    space = WorldAESpace()
    latents = space.encode(dataset.images(list(range(len(dataset)))))
    seen = np.concatenate([to_uint8(space.to_pil(latents[i:i + 512])) for i in range(0, len(latents), 512)])
    raw = X.score_images(seen, dataset.captions, ALL, progress=True, workers=exp.workers)
    calibration = Calibration.fit(raw)
    dataset.set_scores(ALL, calibration.apply_all(raw, ALL), calibration=calibration)
    return dataset, latents, raw


def spread(raw: np.ndarray, calibrated: np.ndarray) -> dict:
    """How a reward varies on the world: raw mean, std, 5/50/95th percentiles, distinct values; calibrated bins
    used (of 64) and the largest bin's share."""
    counts = np.bincount(np.round(calibrated[np.isfinite(calibrated)] * 63).astype(int), minlength=64)
    p5, p50, p95 = np.nanpercentile(raw, [5, 50, 95])
    return {"mean": float(np.nanmean(raw)), "std": float(np.nanstd(raw)), "p5": float(p5), "p50": float(p50),
            "p95": float(p95), "distinct": int(len(np.unique(raw[np.isfinite(raw)]))),
            "bins_used": int((counts > 0).sum()), "largest_bin_share": float(counts.max() / max(counts.sum(), 1))}


def control(pipe, key: str, keys: list[str], captions: list[str], exp: X.ExperimentConfig, seed: int,
            bootstrap: int) -> dict:
    """Sweep `key`'s target over TARGETS (the model's other rewards missing; guided away from the unconditional
    branch) on `captions` with the same noise -> {"measured": per-target mean_ci of key's raw score, "spearman"
    (of the means), "spearman_ci" (percentile interval over prompt resamples), "delta" (target 1 minus 0, paired)}."""
    from mirokit.evaluate.stats import mean_ci, spearman
    from mirokit.pipeline import MiroPipeline

    pipe = pipe if isinstance(pipe, MiroPipeline) else MiroPipeline.from_pretrained(pipe)
    missing = {k: None for k in keys}
    scores = np.stack([X.score_images(X.sample_prompts(pipe, captions, exp, rewards=missing | {key: t},
                                                       negative=missing, seed=seed), captions, [key])[key]
                       for t in TARGETS])  # (T, prompts)
    means = np.nanmean(scores, axis=1)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, scores.shape[1], (bootstrap, scores.shape[1]))
    rhos = np.asarray([spearman(TARGETS, np.nanmean(scores[:, d], axis=1)) for d in draws])
    rhos = rhos[np.isfinite(rhos)]
    low, high = (np.percentile(rhos, [2.5, 97.5]).tolist() if len(rhos) else [float("nan")] * 2)
    return {"targets": list(TARGETS), "measured": [mean_ci(s) for s in scores], "spearman": spearman(TARGETS, means),
            "spearman_ci": {"low": low, "high": high, "resamples": int(len(rhos))},
            "delta": mean_ci(scores[-1] - scores[0])}


def evaluate(model, keys: list[str], meta: list[dict], control_captions: list[str], exp: X.ExperimentConfig,
             bootstrap: int) -> dict:
    """ShapesEval, all four rewards (every reward of the model asked at 1) and each of the model's rewards'
    control, of one model folder (or loaded pipeline)."""
    from mirokit.evaluate.stats import mean_ci
    from mirokit.pipeline import MiroPipeline

    pipe = model if isinstance(model, MiroPipeline) else MiroPipeline.from_pretrained(model)
    captions, ids = [m["prompt"] for m in meta], list(range(len(meta)))
    high, missing = {k: 1.0 for k in keys}, {k: None for k in keys}

    def quality(asked: dict) -> dict:
        images = X.sample_prompts(pipe, captions, exp, rewards=asked, negative=missing)
        summary = X.summarize_samples(X.evaluate_samples(images, meta), ids)
        rewards = X.score_images(images, captions, ALL)
        return {"shapes_eval": summary["shapes_eval"], "per_tag": summary["per_tag"],
                "rewards": {k: mean_ci(v, ids) for k, v in rewards.items()}}

    out = quality(high)
    if NEW in keys:  # asked as the parent is: the new reward missing
        out["new_missing"] = quality(high | {NEW: None})
    out["control"] = {k: control(pipe, k, keys, control_captions, exp, exp.seed + 1, bootstrap) for k in keys}
    return out


def train_run(name: str, keys: list[str], exp: X.ExperimentConfig, data: list[str], extra: list[str],
              threads: int, resume: bool) -> tuple[Path | None, float, str | None]:
    """One `mirokit train` process (one at a time) -> (model folder or None, seconds, error line or None)."""
    model = Path(exp.out_dir) / "runs" / name / "model"
    if resume and (model / "config.json").is_file():
        print(f"  {name}: reusing {model}", flush=True)
        return model, 0.0, None
    start = time.perf_counter()
    try:
        X.train_in_parallel({name: keys}, exp, data, threads_each=threads, extra={name: extra})
    except RuntimeError as err:
        print(f"  {name}: FAILED: {err}", flush=True)
        return None, time.perf_counter() - start, str(err)
    return model, time.perf_counter() - start, None


def run_seed(args, seed: int) -> dict:
    """World, parent and every arm for one seed -> this seed's results."""
    from mirokit.data.source import CALIBRATION_FILE
    from mirokit.train.checkpoint import list_checkpoints
    from mirokit.train.metrics import read_metrics
    from mirokit.world.prompts import load_shapes_eval

    out = Path(args.out) / f"seed{seed}"
    exp = X.ExperimentConfig(out_dir=str(out), num_samples=args.samples, seed=seed,
                             sampling={"solver": args.solver, "steps": args.sample_steps, "guidance": args.guidance},
                             steps=args.steps,
                             workers=args.workers, overrides=[f"train.precision={args.precision}"])
    stages: dict[str, float] = {}
    t = time.perf_counter()
    runs = out / "runs"
    scores_file = runs / "world_scores.parquet"
    if args.resume and scores_file.is_file() and (out / "world_raw_spread.json").is_file():
        from safetensors.torch import load_file

        from mirokit.world.ae_space import WorldAESpace

        latent_path = runs / "world_latents.safetensors"
        normed = WorldAESpace().with_normalisation(load_file(str(latent_path))["latents"])
        data = [f"data.scores={scores_file}", f"data.calibration={runs / CALIBRATION_FILE}",
                f"data.latents={latent_path}",
                "image_space.scale=[" + ",".join(f"{v:.6g}" for v in normed.config.scale) + "]",
                "image_space.bias=[" + ",".join(f"{v:.6g}" for v in normed.config.bias) + "]",
                f"image_space.fingerprint={normed.config.fingerprint}"]  # as X.save_latents writes them
        world = json.loads((out / "world_raw_spread.json").read_text())
        print("reusing the world in", runs, flush=True)
    else:
        print(f"[seed {seed}] building the demo world ({args.samples} samples), encoding it, scoring the decoded "
              f"images with {', '.join(ALL)} ...", flush=True)
        dataset, latents, raw = build_world(exp)
        _, data = X.data_overrides(exp, dataset, latents)
        values = dataset.batch(list(range(len(dataset))), ALL).rewards.numpy()
        world = {k: spread(raw[k], values[:, j]) for j, k in enumerate(ALL)}
        ok = {k: np.isfinite(raw[k]) & np.isfinite(raw[NEW]) for k in OLD}
        world["correlation_with_" + NEW] = {k: float(np.corrcoef(raw[NEW][ok[k]], raw[k][ok[k]])[0, 1]) for k in OLD}
        write_json(out / "world_raw_spread.json", world)
        del dataset, latents
    stages["world"] = time.perf_counter() - t
    print(f"  {NEW} on the world (decoded images): " + ", ".join(
        f"{k} {world[NEW][k]:.3f}" for k in ("mean", "std", "p5", "p95")) + f", {world[NEW]['bins_used']}/64 bins",
        flush=True)

    ckpt = [f"train.checkpoint_every={args.curve_every}", "train.keep_checkpoints=0"] if args.curve_every else []
    results: dict[str, dict] = {}
    t = time.perf_counter()
    print(f"[seed {seed}] training the parent (3 rewards, {args.parent_steps} steps) ...", flush=True)
    parent, seconds, error = train_run("parent", OLD, replace(exp, steps=args.parent_steps), data, [], args.threads,
                                       args.resume)
    stages["train parent"] = time.perf_counter() - t
    if parent is None:
        raise SystemExit(f"the parent failed to train: {error}")
    results["parent"] = {"keys": OLD, "steps": args.parent_steps, "train_seconds": seconds}
    for arm in [a for a in args.arms if a != "parent"]:
        t = time.perf_counter()
        print(f"[seed {seed}] training {arm} (4 rewards, {args.steps} steps) ...", flush=True)
        model, seconds, error = train_run(arm, ALL, exp, data, [*ckpt, *arm_overrides(arm, parent, args.lora_rank)],
                                          args.threads, args.resume)
        stages[f"train {arm}"] = time.perf_counter() - t
        results[arm] = {"keys": ALL, "steps": args.steps, "train_seconds": seconds, "overrides":
                        arm_overrides(arm, parent, args.lora_rank)}
        if model is None:
            results[arm]["error"] = error
        else:
            metrics = runs / arm / "metrics.jsonl"
            rows = read_metrics(metrics) if metrics.is_file() else []
            results[arm]["final_loss"] = rows[-1].get("loss") if rows else None
            log = (runs / f"{arm}.log").read_text(errors="replace").splitlines()
            results[arm]["trainable_line"] = next((ln.strip() for ln in log if ln.startswith("trainable parameters")),
                                                  None)
            results[arm]["model"] = str(model)

    prompts = load_shapes_eval()
    meta = [prompts[i] for i in np.linspace(0, len(prompts) - 1, args.eval_prompts).round().astype(int)]
    order = np.random.default_rng(seed + 1).permutation(len(prompts))[: args.control_prompts]
    control_captions = [prompts[i]["prompt"] for i in order]
    torch.set_num_threads(args.threads)
    for arm in [a for a in args.arms if "error" not in results.get(a, {})]:
        if args.curve_only and arm == "parent":
            continue
        t = time.perf_counter()
        folder = parent if arm == "parent" else runs / arm / "model"
        if args.curve_only:
            results[arm]["control"] = {NEW: control(folder, NEW, ALL, control_captions, exp, seed + 1, args.bootstrap)}
        else:
            results[arm].update(evaluate(folder, results[arm]["keys"], meta, control_captions, exp, args.bootstrap))
        if arm != "parent" and args.curve_every:  # the new reward's control along the run
            from mirokit.pipeline import MiroPipeline

            curve = []
            for c in list_checkpoints(runs / arm):
                step = int(c.name.split("_")[1])
                if step >= args.steps:
                    continue
                curve.append({"step": step, **control(MiroPipeline.from_pretrained(c), NEW, ALL, control_captions,
                                                      exp, seed + 1, args.bootstrap)})
            curve.append({"step": args.steps, **results[arm]["control"][NEW]})
            results[arm]["curve"] = [{"step": r["step"], "spearman": r["spearman"], "spearman_ci": r["spearman_ci"],
                                      "delta": r["delta"]} for r in curve]
            results[arm]["first_step_rho_0.9"] = next((r["step"] for r in curve if r["spearman"] >= 0.9), None)
        stages[f"evaluate {arm}"] = time.perf_counter() - t
        r = results[arm]
        print(f"  {arm}: " + (f"ShapesEval {r['shapes_eval']['mean']:.3f}±{r['shapes_eval']['half_width']:.3f}; "
                              if "shapes_eval" in r else "") + "control "
              + ", ".join(f"{k.removeprefix('world_')} {v['spearman']:.2f}" for k, v in r["control"].items()),
              flush=True)
    return {"seed": seed, "world": world, "arms": results, "stage_seconds": stages}


def _rho(r: dict, key: str) -> str:
    c = r.get("control", {}).get(key)
    if c is None:
        return "n/a"
    lo, hi = c["spearman_ci"]["low"], c["spearman_ci"]["high"]
    return f"{c['spearman']:.2f} [{lo:.2f}, {hi:.2f}]"


def _ci(c: dict, digits: int = 3) -> str:
    return f"{c['mean']:.{digits}f} ± {c['half_width']:.{digits}f}"


def tables(result: dict, args) -> str:
    """Markdown tables of one seed: control, then ShapesEval and the rewards."""
    arms = result["arms"]
    lines = [f"seed {result['seed']}: parent {args.parent_steps} steps; arms {args.steps} steps", "",
             "| arm | " + " | ".join(f"control {k.removeprefix('world_')} (ρ [95%])" for k in [NEW, *OLD])
             + f" | {NEW.removeprefix('world_')} asked 1 − 0 | first step ρ ≥ 0.9 |",
             "|---|" + "---|" * (len(ALL) + 2)]
    for name, r in arms.items():
        if "error" in r:
            lines.append(f"| {name} | " + " | ".join(["failed"] * (len(ALL) + 2)) + " |")
            continue
        delta = r["control"][NEW]["delta"] if NEW in r.get("control", {}) else None
        first = r.get("first_step_rho_0.9", "n/a") if name != "parent" else "n/a"
        lines.append(f"| {name} | " + " | ".join(_rho(r, k) for k in [NEW, *OLD])
                     + f" | {_ci(delta) if delta else 'n/a'} | {'never' if first is None else first} |")
    curves = {name: {c["step"]: c for c in r["curve"]} for name, r in arms.items() if r.get("curve")}
    if curves:
        steps = sorted({step for c in curves.values() for step in c})
        lines += ["", f"{NEW} control along the runs: ρ [95%] / measured {NEW.removeprefix('world_')} asked 1 − 0",
                  "", "| step | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves)]
        for step in steps:
            cells = [(f"{c[step]['spearman']:.2f} [{c[step]['spearman_ci']['low']:.2f}, "
                      f"{c[step]['spearman_ci']['high']:.2f}] / {_ci(c[step]['delta'])}") if step in c else ""
                     for c in curves.values()]
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
    if all("shapes_eval" not in r for r in arms.values()):
        return "\n".join(lines)
    lines += ["", "| arm | ShapesEval | " + " | ".join(k.removeprefix("world_") for k in ALL) + " |",
              "|---|---|" + "---|" * len(ALL)]
    for name, r in arms.items():
        if "error" in r or "shapes_eval" not in r:
            continue
        rows = [(name, r)] + ([(f"{name}, {NEW.removeprefix('world_')} missing", r["new_missing"])]
                              if "new_missing" in r else [])
        for label, q in rows:
            lines.append(f"| {label} | {_ci(q['shapes_eval'])} | " + " | ".join(_ci(q["rewards"][k]) for k in ALL)
                         + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parent-steps", type=int, default=1200, help="training steps of the three-reward parent")
    p.add_argument("--steps", type=int, default=200, help="training steps of every four-reward arm")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (world, weights and noise); each a full run")
    p.add_argument("--samples", type=int, default=8000, help="world samples (the demo's 8000)")
    p.add_argument("--eval-prompts", type=int, default=200, help="ShapesEval prompts (task-balanced) per model")
    p.add_argument("--control-prompts", type=int, default=48, help="prompts per target of each control sweep")
    p.add_argument("--curve-every", type=int, default=50,
                   help="also the new reward's control at every this many steps of each four-reward arm (0: off)")
    p.add_argument("--curve-only", action="store_true",
                   help="evaluate only the new reward's control (along the runs with --curve-every); no parent row")
    p.add_argument("--bootstrap", type=int, default=1000, help="prompt resamples of the Spearman interval")
    p.add_argument("--lora-rank", type=int, default=8, help="LoRA rank (alpha = rank)")
    p.add_argument("--sample-steps", type=int, default=6, help="ODE steps per sample (the demo's 6)")
    p.add_argument("--solver", default="ab2", help="ODE solver (the demo's AB2)")
    p.add_argument("--guidance", type=float, default=3.0, help="joint guidance scale (the demo's 3)")
    p.add_argument("--threads", type=int, default=2, help="threads of the (one at a time) training and sampling")
    p.add_argument("--workers", type=int, default=2, help="processes scoring the world")
    p.add_argument("--precision", default="fp32", help="train.precision of every run (fp32, bf16 or auto)")
    p.add_argument("--resume", action="store_true", help="reuse the world and every model already in --out")
    p.add_argument("--out", default="bench_out/finetune", help="output folder")
    args = p.parse_args()
    args.arms = args.arms.split(",")
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        sys.exit(f"unknown arm {unknown[0]!r}; known: {', '.join(ARMS)}")
    if "parent" not in args.arms:
        args.arms = ["parent", *args.arms]  # the others start from it, and it is the reference row
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for seed in seeds:
        results.append(run_seed(args, seed))
        write_json(Path(args.out) / "finetune.json", {"settings": vars(args), "new_reward": NEW, "results": results,
                                                       "seconds": time.perf_counter() - start})
    text = "\n\n".join(tables(result, args) for result in results)
    (Path(args.out) / "finetune.md").write_text(text + "\n")
    print("\n" + text)
    print(f"\n{time.perf_counter() - start:.0f} s; results in {Path(args.out) / 'finetune.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
