"""MIRO on diffusers transformers in the shapes world (issue 37 section 5).

A small diffusers transformer of each family (configs/demo_world_sana.yaml, demo_world_sd3.yaml: Sana and SD3
built from an inline config, patch size 1 on the demo's 4x8x8 latents of the shipped world autoencoder, the
demo's world, text encoder width, optimizer and sampler) is trained, one family at a time, two runs side by side
(one thread each, as the demo trains):

    scratch      baseline (no rewards) and MIRO (the three world rewards) for --steps steps each
    fine-tune    from that baseline (train.init_from): `continue` (no rewards) and `finetune` (with the three
                 reward tokens, new) for --ft-steps steps each

and, with --unet, the demo's UNet (configs/demo_world.yaml) baseline and MIRO for as many steps as it trains in the
first family's training time (--steps x the UNet's images/s in a short probe / that family's MIRO run's images/s).

Every model is sampled on the same task-balanced ShapesEval prompts and noise (every reward of the model asked at 1,
guided away from the trained unconditional branch): ShapesEval and every world reward's mean, 95% intervals
(mirokit.evaluate.stats); each reward model's control: the reward's target swept over 0, 0.25, 0.5, 0.75, 1 (the
others missing) on --control-prompts other prompts, the Spearman correlation of the measured means with the
targets and its 95% interval over prompt resamples (bench/finetune.py's `control`, the demo's measure).
Training images/s: the median of a run's logged images_per_s (one thread, side by side with the other run);
sampling images/s: the ShapesEval pass (--threads threads, the sampler's two guidance branches included).

Prints a markdown table (also OUT/backbones.md) and writes OUT/backbones.json. A benchmark, not a test.

    .venv/bin/python bench/backbones.py --unet      # BENCHMARKS.md: 1500 + 500 steps, ~26 min on 2 cores
    .venv/bin/python bench/backbones.py --steps 20 --ft-steps 10 --samples 512 --eval-prompts 24 \
        --control-prompts 8 --out /tmp/bb_dry                                          # plumbing only
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune import control  # noqa: E402 (bench scripts are not a package)

from mirokit.evaluate.pages import write_json  # noqa: E402
from mirokit.world import experiment as X  # noqa: E402

FAMILIES = {"sana": "demo_world_sana", "sd3": "demo_world_sd3"}
KEYS = list(X.WORLD_REWARDS)


def train_pair(exp: X.ExperimentConfig, data: list[str], variants: dict[str, list[str]],
               extra: dict[str, list[str]] | None = None) -> tuple[dict[str, Path], float]:
    """Train two variants side by side (one thread each) -> ({name: model folder}, wall seconds)."""
    start = time.perf_counter()
    models = X.train_in_parallel(variants, exp, data, threads_each=1, extra=extra)
    return models, time.perf_counter() - start


def train_speed(run_dir: Path) -> float:
    """Median images/s of a run's second half of logged rows."""
    from mirokit.train.metrics import read_metrics

    rows = read_metrics(run_dir / "metrics.jsonl")
    last = rows[-1]["step"] if rows else 0
    late = [r["images_per_s"] for r in rows if r["step"] > last // 2 and r.get("images_per_s")]
    return float(np.median(late)) if late else float("nan")


def evaluate(model: Path, keys: list[str], meta: list[dict], control_captions: list[str], exp: X.ExperimentConfig,
             bootstrap: int) -> dict:
    """ShapesEval, every world reward's mean (the model's rewards asked at 1), sampling images/s and, for a reward
    model, each reward's control."""
    from mirokit.evaluate.stats import mean_ci
    from mirokit.pipeline import MiroPipeline

    pipe = MiroPipeline.from_pretrained(model)
    captions, ids = [m["prompt"] for m in meta], list(range(len(meta)))
    start = time.perf_counter()
    images = X.sample_prompts(pipe, captions, exp, rewards=dict.fromkeys(keys, 1.0), negative=dict.fromkeys(keys))
    seconds = time.perf_counter() - start
    summary = X.summarize_samples(X.evaluate_samples(images, meta), ids)
    rewards = X.score_images(images, captions, KEYS)
    out = {"shapes_eval": summary["shapes_eval"], "per_tag": summary["per_tag"],
           "rewards": {k: mean_ci(v, ids) for k, v in rewards.items()}, "sample_images_per_s": len(captions) / seconds,
           "params": sum(p.numel() for p in pipe.generator.parameters())}
    out["control"] = {k: control(pipe, k, keys, control_captions, exp, exp.seed + 1, bootstrap) for k in keys}
    return out


def _ci(c: dict, digits: int = 3) -> str:
    return f"{c['mean']:.{digits}f} ± {c['half_width']:.{digits}f}"


def _rho(r: dict, key: str) -> str:
    c = r.get("control", {}).get(key)
    if c is None:
        return "n/a"
    return f"{c['spearman']:.2f} [{c['spearman_ci']['low']:.2f}, {c['spearman_ci']['high']:.2f}]"


def table(results: dict) -> str:
    """One markdown row per model."""
    short = [k.removeprefix("world_") for k in KEYS]
    lines = ["| model | arm | steps | params | train img/s | sample img/s | ShapesEval | " + " | ".join(short)
             + " | " + " | ".join(f"control {s} ρ [95%]" for s in short) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * (2 * len(KEYS))]
    for r in results.values():
        if "error" in r:
            lines.append(f"| {r['family']} | {r['arm']} | {r['steps']} | failed: {r['error'][:80]} |")
            continue
        lines.append(f"| {r['family']} | {r['arm']} | {r['steps']} | {r['params'] / 1e6:.2f}M | "
                     f"{r['train_images_per_s']:.0f} | {r['sample_images_per_s']:.0f} | {_ci(r['shapes_eval'])} | "
                     + " | ".join(_ci(r["rewards"][k]) for k in KEYS) + " | "
                     + " | ".join(_rho(r, k) for k in KEYS) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, of {', '.join(FAMILIES)}")
    p.add_argument("--steps", type=int, default=1500, help="training steps of the from-scratch runs (and the parent)")
    p.add_argument("--ft-steps", type=int, default=500, help="training steps of the continue / finetune arms (0: none)")
    p.add_argument("--unet", action="store_true", help="also the demo UNet at the first family's wall-clock")
    p.add_argument("--seed", type=int, default=0, help="seed of the world, the weights and the noise")
    p.add_argument("--samples", type=int, default=8000, help="world samples (the demo's 8000)")
    p.add_argument("--eval-prompts", type=int, default=120, help="ShapesEval prompts (task-balanced) per model")
    p.add_argument("--control-prompts", type=int, default=24, help="prompts per target of each control sweep")
    p.add_argument("--bootstrap", type=int, default=1000, help="prompt resamples of the Spearman interval")
    p.add_argument("--sample-steps", type=int, default=6, help="ODE steps per sample (the demo's 6)")
    p.add_argument("--solver", default="ab2", help="ODE solver (the demo's AB2)")
    p.add_argument("--guidance", type=float, default=3.0, help="joint guidance scale (the demo's 3)")
    p.add_argument("--threads", type=int, default=2, help="threads of the sampling and scoring")
    p.add_argument("--workers", type=int, default=2, help="processes scoring the world")
    p.add_argument("--out", default="bench_out/backbones", help="output folder")
    args = p.parse_args()
    families = args.families.split(",")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        sys.exit(f"unknown family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
    start = time.perf_counter()
    exp = X.ExperimentConfig(out_dir=args.out, num_samples=args.samples, seed=args.seed, steps=args.steps,
                             sampling={"solver": args.solver, "steps": args.sample_steps, "guidance": args.guidance},
                             workers=args.workers, overrides=["train.precision=fp32"])
    stages: dict[str, float] = {}
    t = time.perf_counter()
    print(f"building the demo world ({args.samples} samples), encoding and scoring it ...", flush=True)
    dataset, latents = X.build_world(exp)
    _, data = X.data_overrides(exp, dataset, latents)
    del dataset, latents
    stages["world"] = time.perf_counter() - t

    runs: dict[str, dict] = {}  # name -> {family, arm, steps, keys, model | error, train_seconds}

    def pair(family: str, config: str, steps: int, arms: dict[str, list[str]], extra: list[str] | None = None):
        names = {f"{family}_{arm}": keys for arm, keys in arms.items()}
        e = replace(exp, config=config, steps=steps)
        print(f"training {' + '.join(names)} ({steps} steps) ...", flush=True)
        try:
            models, seconds = train_pair(e, data, names, {n: list(extra or []) for n in names})
        except RuntimeError as err:
            print(f"  FAILED: {err}", flush=True)
            for n, arm in zip(names, arms):
                runs[n] = {"family": family, "arm": arm, "steps": steps, "error": str(err)}
            return None
        stages[f"train {' + '.join(names)}"] = seconds
        for (n, keys), arm in zip(names.items(), arms):
            runs[n] = {"family": family, "arm": arm, "steps": steps, "keys": keys, "model": str(models[n]),
                       "pair_seconds": seconds, "train_images_per_s": train_speed(Path(args.out) / "runs" / n)}
        return models

    first = None  # (family, its MIRO run's training images/s)
    for family in families:
        models = pair(family, FAMILIES[family], args.steps, {"baseline": [], "miro": KEYS})
        if models is None:
            continue
        first = first or (family, runs[f"{family}_miro"]["train_images_per_s"])
        if args.ft_steps:
            parent = models[f"{family}_baseline"]
            pair(family, FAMILIES[family], args.ft_steps, {"continue": [], "finetune": KEYS},
                 [f"train.init_from={parent}"])
    if args.unet and first and np.isfinite(first[1]):
        t = time.perf_counter()
        threads = torch.get_num_threads()
        ips, _ = X.probe_images_per_second(replace(exp, config="demo_world"), data)
        torch.set_num_threads(threads)
        unet_steps = max(1, round(args.steps * ips / first[1]))
        stages["unet probe"] = time.perf_counter() - t
        print(f"demo UNet: {ips:.0f} images/s per run in the probe vs {first[0]}'s {first[1]:.0f} -> {unet_steps} "
              f"steps in {first[0]}'s training time", flush=True)
        pair("unet", "demo_world", unet_steps, {"baseline": [], "miro": KEYS})

    from mirokit.world.prompts import load_shapes_eval

    prompts = load_shapes_eval()
    meta = [prompts[i] for i in np.linspace(0, len(prompts) - 1, args.eval_prompts).round().astype(int)]
    order = np.random.default_rng(args.seed + 1).permutation(len(prompts))[: args.control_prompts]
    control_captions = [prompts[i]["prompt"] for i in order]
    torch.set_num_threads(args.threads)
    for name, r in runs.items():
        if "error" in r:
            continue
        t = time.perf_counter()
        r.update(evaluate(Path(r["model"]), r["keys"], meta, control_captions, exp, args.bootstrap))
        stages[f"evaluate {name}"] = time.perf_counter() - t
        print(f"  {name}: ShapesEval {_ci(r['shapes_eval'])}; control "
              + ", ".join(f"{k.removeprefix('world_')} {v['spearman']:.2f}" for k, v in r["control"].items()),
              flush=True)
        write_json(Path(args.out) / "backbones.json", {"settings": vars(args), "runs": runs, "stage_seconds": stages})
    text = table(runs)
    write_json(Path(args.out) / "backbones.json", {"settings": vars(args), "runs": runs, "stage_seconds": stages,
                                                   "seconds": time.perf_counter() - start})
    (Path(args.out) / "backbones.md").write_text(text + "\n")
    print("\n" + text)
    print("\n" + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items()))
    print(f"\n{time.perf_counter() - start:.0f} s; results in {Path(args.out) / 'backbones.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
