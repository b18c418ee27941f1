"""`mirokit demo`: MIRO against a no-reward baseline on the shapes world, within a wall-clock budget.

1. measure this machine on a small world (its build cost per sample, a short one-thread training probe, a
   sampling probe) and from the time left size the world: each sample seen at most `max_epochs` times in
   the training that time affords, at least `min_samples`;
2. generate the demo world (mirokit.world.sampling.demo_world_config), encode it with the shipped world
   autoencoder (the demo's SDXL-VAE), score the decoded images with the three built-in rewards (two
   processes) and calibrate each to 64 quantile bins;
3. write the latents and scores the training processes read, and fix the number of training steps (the
   same for both models) from the time now left, so that the demo ends within budget;
4. train the baseline (no rewards) and MIRO (all three rewards) side by side, one process and core each;
5. sample every ShapesEval prompt from both (MIRO: all targets 1; where the budget affords it also the
   quality mix, and with --official-negative MIRO guided away from all-0 targets; the same noise for all),
   evaluate with ShapesEval, the rewards, colour fidelity and single-object class accuracy, each with a 95%
   interval and each MIRO row's paired difference to the baseline; sweep each reward's target (control);
6. write OUT/report.html, OUT/summary.json and OUT/figures/.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from mirokit.evaluate.pages import write_json
from mirokit.sampling import resolve
from mirokit.world import experiment as X
from mirokit.world.demo_plan import (
    CONTROL_OTHERS,
    CONTROL_TARGETS,
    MISSING,
    MIX_SHARE,
    DemoConfig,
    mix_row_name,
    plan_steps,
    plan_world,
    short_training,
    variants,
    world_samples,
)
from mirokit.world.source import WORLD_REWARDS

STAGES = ("measure", "world", "write", "train", "evaluate", "report")


def stage(i: int, text: str, marks: dict[str, float]) -> None:
    """Print the demo's progress line `[i/6] text` and note when stage i started in `marks`."""
    marks[STAGES[i - 1]] = time.perf_counter()
    print(f"[{i}/6] {text}", flush=True)


def stage_seconds(marks: dict[str, float], end: float) -> dict[str, float]:
    """{stage: seconds it took} from the start marks of `stage`."""
    names = list(marks)
    return {n: round((marks[names[k + 1]] if k + 1 < len(names) else end) - marks[n], 2) for k, n in enumerate(names)}


def sampling_seconds(pipe, exp: X.ExperimentConfig, prompts: list[str]) -> tuple[float, float]:
    """(fixed, per ODE step) seconds per sampled image (decoding included), from two timed sampling runs."""
    times = {}
    for steps in (1, 2, 4):  # the 1-step run is a warm-up
        probe = replace(exp, sampling={**exp.sampling, "steps": steps})
        t = time.perf_counter()
        X.sample_prompts(pipe, prompts, probe)
        times[steps] = (time.perf_counter() - t) / len(prompts)
    per_step = max((times[4] - times[2]) / 2, 1e-6)
    return max(times[2] - 2 * per_step, 0.0), per_step


def evaluate_models(pipes: dict, cfg: DemoConfig, exp: X.ExperimentConfig) -> dict:
    """Sample the ShapesEval prompts for every row of `variants(cfg)` from the loaded pipelines {run: MiroPipeline}
    (same noise), evaluate each, and MIRO's paired differences to the baseline."""
    from mirokit.evaluate.stats import mean_ci, paired_mean_ci
    from mirokit.world.prompts import load_shapes_eval

    prompts = load_shapes_eval()
    chosen = np.linspace(0, len(prompts) - 1, min(cfg.eval_prompts, len(prompts))).round().astype(int)
    meta = [prompts[i] for i in chosen for _ in range(cfg.eval_images)]
    ids = [i // cfg.eval_images for i in range(len(meta))]
    captions = [m["prompt"] for m in meta]
    models, records, samples, rewards = {}, {}, {}, {}
    for name, (run, pos, neg) in variants(cfg).items():
        samples[name] = X.sample_prompts(pipes[run], captions, exp, rewards=pos, negative=neg)
        records[name] = X.evaluate_samples(samples[name], meta)
        rewards[name] = X.score_images(samples[name], captions, WORLD_REWARDS, workers=exp.workers)
        models[name] = {**X.summarize_samples(records[name], ids),
                        "rewards": {k: mean_ci(v, ids) for k, v in rewards[name].items()}}
    b, tags = records["baseline"], [r["tag"] for r in records["baseline"]]

    def minus_baseline(name: str) -> dict:
        a = records[name]
        return {"shapes_eval": paired_mean_ci(X.column(a, "correct"), X.column(b, "correct"), ids, tags),
                "colour_fidelity": paired_mean_ci(X.column(a, "colour_ok"), X.column(b, "colour_ok"), ids),
                "single_object_class": paired_mean_ci(X.column(a, "class_ok"), X.column(b, "class_ok"), ids),
                **{key: paired_mean_ci(rewards[name][key], rewards["baseline"][key], ids) for key in WORLD_REWARDS}}

    return {"models": models, "minus_baseline": {name: minus_baseline(name) for name in models if name != "baseline"},
            "samples": samples, "captions": captions}


def controllability(pipe, cfg: DemoConfig, exp: X.ExperimentConfig) -> dict:
    """For each reward: its target swept over CONTROL_TARGETS (the other rewards missing, or at 1 with
    cfg.control_others "high"; guidance w = cfg.control_guidance, default the sampling's, against the
    unconditional branch), that reward's mean raw score on MIRO's samples with its interval (the same prompts
    and noise at every target), and the Spearman correlation of means and targets."""
    from tqdm.auto import tqdm

    from mirokit.evaluate.stats import mean_ci, spearman
    from mirokit.world.prompts import load_shapes_eval

    prompts = load_shapes_eval()
    order = np.random.default_rng(cfg.seed + 1).permutation(len(prompts))[: cfg.control_prompts]
    captions = [prompts[i]["prompt"] for i in order]
    out = {}
    if cfg.control_guidance is not None:
        exp = replace(exp, sampling={**exp.sampling, "guidance": cfg.control_guidance})
    bar = tqdm(total=len(WORLD_REWARDS) * len(CONTROL_TARGETS), desc="controllability sweep", leave=False)
    for key in WORLD_REWARDS:
        cis = []
        for target in CONTROL_TARGETS:
            images = X.sample_prompts(pipe, captions, exp, rewards=CONTROL_OTHERS[cfg.control_others] | {key: target},
                                      negative=MISSING, seed=cfg.seed + 1)
            cis.append(mean_ci(X.score_images(images, captions, [key])[key]))
            bar.update(1)
        means = [c["mean"] for c in cis]
        out[key] = {"targets": list(CONTROL_TARGETS), "measured": cis, "spearman": spearman(CONTROL_TARGETS, means)}
    bar.close()
    return out


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo into cfg.out_dir; returns the summary (also written to OUT/summary.json)."""
    from mirokit.pipeline import MiroPipeline
    from mirokit.world.demo_report import write_demo_report

    before = max(0.0, time.time() - cfg.started_at) if cfg.started_at is not None else 0.0  # e.g. the install
    start = time.perf_counter() - before
    marks: dict[str, float] = {}
    out = Path(cfg.out_dir)
    shutil.rmtree(out, ignore_errors=True)
    (out / "figures").mkdir(parents=True)
    exp = X.ExperimentConfig(out_dir=str(out), num_samples=cfg.probe_samples, steps=cfg.steps or 0,
                             **{k: getattr(cfg, k) for k in ("batch_size", "sampling", "seed", "config")},
                             overrides=list(cfg.overrides))
    plan = {"steps": cfg.steps, "budget_seconds": cfg.minutes * 60, "seconds_before_demo": round(before, 1),
            "precision": X.decide_precision(exp)}  # every run (and the probe) trains in this one
    print(f"training precision: {plan['precision']['precision']} ({plan['precision']['chosen_by']})", flush=True)
    if cfg.steps is None:
        stage(1, f"measuring this machine on a {cfg.probe_samples}-sample world (building it, a short training "
                 f"probe and a sampling probe)", marks)
        probe = replace(exp, out_dir=str(out / "probe"), workers=1)  # one scoring process: no start-up cost
        cost: dict[str, float] = {}
        dataset, latents = X.build_world(probe, progress=False, timings=cost)
        score_s = cost["scores"] / cfg.probe_samples / exp.workers  # the world and the evaluation score in parallel
        world_s = cost["images"] / cfg.probe_samples + score_s
        train_img_s, probe_model = X.probe_images_per_second(probe, X.data_overrides(probe, dataset, latents)[1])
        fixed, per_step = sampling_seconds(MiroPipeline.from_pretrained(probe_model), exp, ["a photo of a circle"] * 64)
        shutil.rmtree(out / "probe", ignore_errors=True)
        image_s = fixed + resolve(None, None, cfg.sampling).steps * per_step
        left = cfg.minutes * 60 - (time.perf_counter() - start)
        exp.num_samples = plan_world(cfg, left, train_img_s, image_s, score_s, world_s)
    else:
        stage(1, f"fixed budget: {cfg.steps} steps per model (no measurement)", marks)
        exp.num_samples = world_samples(cfg, cfg.steps)
    stage(2, f"generating {exp.num_samples} samples of the demo world, encoding them with the world autoencoder, "
             f"scoring the decoded images", marks)
    dataset, latents = X.build_world(exp)
    dataset.info.save(out)  # calibration.json beside the report
    stage(3, "writing the latents and the calibrated scores for the training runs", marks)
    latent_path, data = X.data_overrides(exp, dataset, latents)
    if cfg.steps is None:  # the steps from the time now left (the world may have cost more or less than planned)
        left = cfg.minutes * 60 - (time.perf_counter() - start)
        plan.update(plan_steps(cfg, left, train_img_s, image_s, score_s), world_samples=exp.num_samples,
                    world_seconds_per_sample=world_s)
        cfg = replace(cfg, eval_images=plan["eval_images_per_prompt"], quality_mix=plan["quality_mix"])
        if warning := short_training(plan, cfg.min_steps):
            print(f"WARNING: {warning}", flush=True)
    else:
        plan["world_samples"] = exp.num_samples
        cfg = replace(cfg, eval_images=cfg.eval_images or 2)
    exp.steps = plan["steps"]
    stage(4, f"training baseline (no rewards) and MIRO ({', '.join(WORLD_REWARDS)}) side by side, "
             f"{exp.steps} steps of {cfg.batch_size} each", marks)
    runs = X.train_in_parallel({"baseline": [], "miro": WORLD_REWARDS}, exp, data)
    stage(5, f"sampling {cfg.eval_prompts * cfg.eval_images} ShapesEval images per model, evaluating, sweeping "
             f"the targets", marks)
    pipes = {name: MiroPipeline.from_pretrained(folder) for name, folder in runs.items()}
    result = evaluate_models(pipes, cfg, exp)
    control = controllability(pipes["miro"], cfg, exp)
    stage(6, "writing the report", marks)
    plan.update(mix_share=MIX_SHARE, mix_row=None if cfg.quality_mix is None else mix_row_name(cfg.quality_mix))
    summary = {"seconds": time.perf_counter() - start, "plan": plan, "models": result["models"],
               "minus_baseline": result["minus_baseline"], "controllability": control,
               "settings": asdict(cfg), "world_latents": str(latent_path)}
    write_demo_report(out, summary, result["samples"], result["captions"], runs)
    summary["stage_seconds"] = stage_seconds(marks, time.perf_counter())
    summary["seconds"] = time.perf_counter() - start
    write_json(out / "summary.json", summary)
    return summary
