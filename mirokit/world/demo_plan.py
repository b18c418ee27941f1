"""What `mirokit demo` runs and how it fits a wall-clock budget: DemoConfig, the rows it samples, and the plan
(world size, training steps, images per prompt, the reward-mix row) from the machine's measured speeds. The
report reads the plan from the summary, never from here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

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
    sampling: dict = field(default_factory=lambda: {"solver": "ab2", "steps": 6, "guidance": 3.0})
    """partial sampling settings (SamplingSettings' fields, e.g. {solver: ab2, steps: 6, guidance: 3,
    guidance_interval: [0.1, 1]}) stored with both models and used to sample them (the built-in `fast` preset: AB2
    at 6 steps reached Euler at 50 on the demo's models, BENCHMARKS.md)"""
    control_guidance: float | None = None
    """joint guidance scale of the controllability sweep; None = the sampling's"""
    control_others: str = "missing"
    """the other rewards' targets while one is swept: "missing" (its own effect, as a user who sets only that
    target gets it) or "high" (every other at 1: that reward in combination with the others high, a
    combination the world rarely shows for low alignment; docs/DEMO.md "Guidance, reward mix and control")"""
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
        from mirokit.sampling import check_partial

        check_partial(self.sampling, "--sampling")
        for name in ("samples", "batch_size", "eval_prompts", "eval_images", "control_prompts"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.minutes <= 0 or (self.steps is not None and self.steps < 1):
            raise ValueError("--minutes must be > 0 and --steps >= 1")
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


EVAL_SHARE = 0.2
"""the largest share of the budget the evaluation may take with 2 images per prompt (on the slowest machine of
our kind, ~30 images/s, it takes ~15%: 2 images lifted MIRO's lead from +1.4..+2.8 to +4.8..+5.3 standard
errors in three seeds at the cost of ~12% of the steps)"""
MIX_SHARE = 0.15
"""the largest share of the budget the evaluation may take with the quality-mix row (DemoConfig.quality_mix):
on a machine 3.9x slower than ours the row would cost ~110-130 of ~1,100-1,300 training steps, so it is left
out there"""
PARALLEL = 0.85
"""images/s of two runs side by side, each on one core, as a fraction of the one-process probe (measured 0.86-0.97
for the demo trunk, 0.83 for the former wider one)"""


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
    fitted = int(train_s * train_img_s * PARALLEL / cfg.batch_size)
    steps = max(cfg.min_steps, fitted)
    left_out = cfg.quality_mix if evaluated.quality_mix is None else None
    return {"steps": steps, "fitted_steps": fitted, "eval_images_per_prompt": evaluated.eval_images,
            "quality_mix": evaluated.quality_mix,
            "quality_mix_left_out": left_out, "train_seconds": train_s, "eval_seconds": eval_s,
            "eval_images": eval_images, "train_images_per_s": train_img_s, "sample_seconds_per_image": image_s,
            "score_seconds_per_image": score_s, "margin_seconds": margin}


FEW_STEPS = 500
"""fewer training steps than this show little of the method: at 500 steps MIRO's ShapesEval lead over the baseline
is within the 95% intervals (BENCHMARKS.md, convergence on the shapes world); ~1,000 steps show it clearly"""


def short_training(plan: dict, min_steps: int) -> str | None:
    """A one-line warning when the budget left too little training (e.g. a slow install counted against it):
    the steps fell to `min_steps` or below FEW_STEPS, with what to do; None otherwise or with fixed --steps."""
    fitted = plan.get("fitted_steps")
    if fitted is None or plan["steps"] >= FEW_STEPS:
        return None
    before = plan.get("seconds_before_demo") or 0.0
    why = (f"training was cut to the minimum of {min_steps} steps (the budget left time for {max(fitted, 0)})"
           if fitted < min_steps else f"only {plan['steps']} training steps fitted the budget")
    spent = f"; {before:.0f} s went to the install before the demo started" if before else ""
    return (f"{why}{spent}: the comparison below shows little of the method (it needs ~1,000 steps). Run `make demo` "
            f"again (the install is done now, so the whole budget trains) or give more time: "
            f"`mirokit demo --minutes 15`.")


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
