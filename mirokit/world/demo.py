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

import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mirokit.world import experiment as X
from mirokit.evaluate.pages import write_json
from mirokit.world.source import WORLD_REWARDS

CONTROL_TARGETS = (0.0, 0.25, 0.5, 0.75, 1.0)
HIGH = {k: 1.0 for k in WORLD_REWARDS}
MISSING = {k: None for k in WORLD_REWARDS}
VARIANTS = {  # report row -> (run, positive targets, negative targets)
    "baseline": ("baseline", {}, {}),
    "miro": ("miro", HIGH, MISSING),
}
"""What is sampled and compared. MIRO asks for every reward at 1 with guidance against the trained
unconditional branch (empty prompt, rewards missing), as the baseline's text guidance is."""
CONTROL_OTHERS = {"missing": MISSING, "high": HIGH}
"""the other rewards' targets while the controllability sweep varies one (DemoConfig.control_others)"""
OFFICIAL_ROW = {"miro, away from all-0": ("miro", HIGH, {k: 0.0 for k in WORLD_REWARDS})}
"""The extra row of --official-negative: the official negative targets (all 0 with the empty prompt, a
combination the model never trains on: caption dropout also drops the rewards)."""


@dataclass(kw_only=True)
class DemoConfig:
    """What `mirokit demo` runs (see its --help)."""

    out_dir: str = "demo_out"
    """output folder (replaced)"""
    minutes: float = 7.0
    """wall-clock budget of the whole demo; sets the training steps"""
    steps: int | None = None
    """training steps per model; None = as many as the budget allows"""
    samples: int | None = None
    """world samples generated and scored; None = enough that no sample is seen more than `max_epochs`
    times in training, and at least `min_samples`"""
    min_samples: int = 8000
    """the smallest world when `samples` is None"""
    max_epochs: float = 5.0
    """when `samples` is None, the world grows with the steps so that each sample is seen at most this often
    (a guard against memorisation: a MIRO model's reward vector nearly names each sample)"""
    probe_samples: int = 512
    """world samples built first to measure the machine (the world's and training's cost per image)"""
    batch_size: int = 32
    """training batch size"""
    eval_prompts: int = 553
    """ShapesEval prompts sampled per model (553 = all; fewer: every k-th, so every task keeps its share)"""
    eval_images: int | None = None
    """images per ShapesEval prompt; None = 2 when that evaluation takes at most `EVAL_SHARE` of the budget
    (halves the variance of the comparison), else 1 (and 2 with fixed --steps)"""
    control_prompts: int = 128
    """prompts per point of the controllability sweep"""
    sample_steps: int = 6
    """ODE steps when sampling (the built-in `fast` preset: AB2 at 6 steps reached Euler at 50 on the demo's
    models, BENCHMARKS.md)"""
    solver: str = "ab2"
    """ODE solver when sampling"""
    guidance: float = 3.0
    """joint guidance scale w"""
    control_guidance: float | None = None
    """joint guidance scale of the controllability sweep; None = `guidance`"""
    control_others: str = "missing"
    """the other rewards' targets while one is swept: "missing" (its own effect, as a user who sets only that
    target gets it) or "high" (every other at 1: that reward in combination with the others high, a
    combination the world rarely shows for low alignment; README "The demo")"""
    seed: int = 0
    """seed of the world, the weights and the sampling noise"""
    config: str = "demo_world"
    """run config of both models"""
    overrides: list[str] = field(default_factory=list)
    """extra `key=value` overrides for both models"""
    min_steps: int = 50
    """never fewer training steps than this, whatever the budget"""
    official_negative: bool = False
    """also sample MIRO guided away from the official negative targets (an extra report row)"""
    quality_mix: float | None = 0.625
    """also sample MIRO with every reward at 1 except world_quality at this target (an extra report row, the
    analogue of the paper's inference-time reward mix: aesthetic 0.625 lifted GenEval from 67.7 to 75), when
    the evaluation with it fits `MIX_SHARE` of the budget (always with fixed --steps or --eval-images); None =
    never"""
    started_at: float | None = None
    """when the budget started (seconds since the epoch; None = now): `make demo` passes its own start, so
    the install counts against the budget too"""

    def __post_init__(self):
        if self.control_others not in CONTROL_OTHERS:
            raise ValueError(f"unknown control_others {self.control_others!r}; known: {', '.join(CONTROL_OTHERS)}")
        if self.quality_mix is not None and not 0.0 <= self.quality_mix <= 1.0:
            raise ValueError(f"quality_mix must be in [0, 1] (a calibrated target), got {self.quality_mix}")


def variants(cfg: DemoConfig) -> dict[str, tuple[str, dict, dict]]:
    """The report rows cfg samples: VARIANTS, the quality mix with cfg.quality_mix, OFFICIAL_ROW with
    cfg.official_negative."""
    mix = {} if cfg.quality_mix is None else {
        mix_row_name(cfg.quality_mix): ("miro", HIGH | {"world_quality": cfg.quality_mix}, MISSING)}
    return {**VARIANTS, **mix, **(OFFICIAL_ROW if cfg.official_negative else {})}


def mix_row_name(quality: float) -> str:
    """The report row of the quality mix at target `quality`."""
    return f"miro, quality {quality:g}"


STAGES = ("measure", "world", "write", "train", "evaluate", "report")
EVAL_SHARE = 0.2
"""the largest share of the budget the evaluation may take with 2 images per prompt (on the slowest machine
of issue 10 it takes ~15%: 2 images lifted MIRO's lead from +1.4..+2.8 to +4.8..+5.3 standard errors in
three seeds at the cost of ~12% of the steps)"""
MIX_SHARE = 0.15
"""the largest share of the budget the evaluation may take with the quality-mix row (DemoConfig.quality_mix):
on a machine 3.9x slower than ours the row would cost ~110-130 of ~1,100-1,300 training steps, so it is left
out there"""
PARALLEL = 0.85
"""images/s of two runs side by side, each on one core, as a fraction of the one-process probe (measured 0.86-0.97
for the demo trunk, 0.83 for the former wider one)"""


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
        probe = X.ExperimentConfig(**{**vars(exp), "sample_steps": steps})
        t = time.perf_counter()
        X.sample_prompts(pipe, prompts, probe)
        times[steps] = (time.perf_counter() - t) / len(prompts)
    per_step = max((times[4] - times[2]) / 2, 1e-6)
    return max(times[2] - 2 * per_step, 0.0), per_step


def evaluation_images(cfg: DemoConfig, per_prompt: int) -> int:
    """Images the evaluation samples: every comparison row x prompts x `per_prompt`, plus the control sweep."""
    return (len(variants(cfg)) * cfg.eval_prompts * per_prompt
            + len(WORLD_REWARDS) * len(CONTROL_TARGETS) * cfg.control_prompts)


def plan_evaluation(cfg: DemoConfig, image_cost_s: float) -> DemoConfig:
    """cfg with its evaluation fixed for a machine where an evaluated image costs `image_cost_s` (sampling and
    scoring): images per prompt 2 when the comparison without the quality mix fits EVAL_SHARE of the budget,
    else 1 (unless cfg.eval_images is set); the quality-mix row kept only when the evaluation with it fits
    MIX_SHARE (or cfg.eval_images is set)."""
    budget = cfg.minutes * 60
    plain = replace(cfg, quality_mix=None)
    per_prompt = cfg.eval_images or (2 if evaluation_images(plain, 2) * image_cost_s <= EVAL_SHARE * budget else 1)
    keep_mix = cfg.eval_images is not None or evaluation_images(cfg, per_prompt) * image_cost_s <= MIX_SHARE * budget
    return replace(cfg if keep_mix else plain, eval_images=per_prompt)


def plan_steps(cfg: DemoConfig, seconds_left: float, train_img_s: float, image_s: float, score_s: float) -> dict:
    """Training steps that fit: the time left minus the evaluation (every image costs `image_s` to sample
    and `score_s` to score; see plan_evaluation) and a margin for start-up and the report, at `train_img_s`
    per model."""
    evaluated = plan_evaluation(cfg, image_s + score_s)
    eval_images = evaluation_images(evaluated, evaluated.eval_images)
    eval_s = eval_images * (image_s + score_s)
    margin = 15.0 + 0.03 * cfg.minutes * 60  # start-up, report, error of the plan
    train_s = seconds_left - eval_s - margin
    steps = max(cfg.min_steps, int(train_s * train_img_s * PARALLEL / cfg.batch_size))
    left_out = cfg.quality_mix if evaluated.quality_mix is None else None
    return {"steps": steps, "eval_images_per_prompt": evaluated.eval_images, "quality_mix": evaluated.quality_mix,
            "quality_mix_left_out": left_out, "train_seconds": train_s, "eval_seconds": eval_s,
            "eval_images": eval_images, "train_images_per_s": train_img_s, "sample_seconds_per_image": image_s,
            "score_seconds_per_image": score_s, "margin_seconds": margin}


def world_samples(cfg: DemoConfig, steps: int) -> int:
    """World size for `steps` training steps: cfg.samples if set, else each sample seen at most cfg.max_epochs
    times, and at least cfg.min_samples."""
    if cfg.samples is not None:
        return cfg.samples
    return max(cfg.min_samples, math.ceil(steps * cfg.batch_size / cfg.max_epochs))


def plan_world(cfg: DemoConfig, seconds_left: float, train_img_s: float, image_s: float, score_s: float,
               world_s: float) -> int:
    """World samples to build with `seconds_left` before the world stage, where each sample costs `world_s`
    to build: the world grows with the steps it leaves time for (see world_samples); the steps themselves
    are fixed after the world is built (plan_steps on the time then left)."""
    first = plan_steps(cfg, seconds_left, train_img_s, image_s, score_s)
    train_s = first["train_seconds"]
    if cfg.samples is not None or train_s <= 0:
        return world_samples(cfg, 0)
    step_s = cfg.batch_size / (train_img_s * PARALLEL)
    small = world_samples(cfg, int((train_s - cfg.min_samples * world_s) / step_s))
    if small == cfg.min_samples:
        return small
    # steps * step_s + steps * batch / max_epochs * world_s = train_s
    return world_samples(cfg, int(train_s / (step_s + cfg.batch_size / cfg.max_epochs * world_s)))


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
    cfg.control_others "high"; guidance w = cfg.control_guidance, default cfg.guidance, against the
    unconditional branch), that reward's mean raw score on MIRO's samples with its interval (the same prompts
    and noise at every target), and the Spearman correlation of means and targets."""
    from tqdm.auto import tqdm

    from mirokit.evaluate.stats import mean_ci, spearman
    from mirokit.world.prompts import load_shapes_eval

    prompts = load_shapes_eval()
    order = np.random.default_rng(cfg.seed + 1).permutation(len(prompts))[: cfg.control_prompts]
    captions = [prompts[i]["prompt"] for i in order]
    out = {}
    exp = replace(exp, guidance=cfg.guidance if cfg.control_guidance is None else cfg.control_guidance)
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
                             **{k: getattr(cfg, k) for k in ("batch_size", "sample_steps", "solver", "guidance",
                                                             "seed", "config")}, overrides=list(cfg.overrides))
    plan = {"steps": cfg.steps, "budget_seconds": cfg.minutes * 60, "seconds_before_demo": round(before, 1)}
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
        image_s = fixed + cfg.sample_steps * per_step
        left = cfg.minutes * 60 - (time.perf_counter() - start)
        exp.num_samples = plan_world(cfg, left, train_img_s, image_s, score_s, world_s)
    else:
        stage(1, f"fixed budget: {cfg.steps} steps per model (no measurement)", marks)
        exp.num_samples = world_samples(cfg, cfg.steps)
    stage(2, f"generating {exp.num_samples} samples of the demo world, encoding them with the world autoencoder, "
             f"scoring the decoded images", marks)
    dataset, latents = X.build_world(exp)
    dataset.info.calibration.save(out / "calibration.json")
    stage(3, "writing the latents and the calibrated scores for the training runs", marks)
    latent_path, data = X.data_overrides(exp, dataset, latents)
    if cfg.steps is None:  # the steps from the time now left (the world may have cost more or less than planned)
        left = cfg.minutes * 60 - (time.perf_counter() - start)
        plan.update(plan_steps(cfg, left, train_img_s, image_s, score_s), world_samples=exp.num_samples,
                    world_seconds_per_sample=world_s)
        cfg = replace(cfg, eval_images=plan["eval_images_per_prompt"], quality_mix=plan["quality_mix"])
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
    summary = {"seconds": time.perf_counter() - start, "plan": plan, "models": result["models"],
               "minus_baseline": result["minus_baseline"], "controllability": control,
               "settings": asdict(cfg), "world_latents": str(latent_path)}
    write_demo_report(out, summary, result["samples"], result["captions"], runs)
    summary["stage_seconds"] = stage_seconds(marks, time.perf_counter())
    summary["seconds"] = time.perf_counter() - start
    write_json(out / "summary.json", summary)
    return summary
