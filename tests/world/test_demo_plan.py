"""The demo's budget: steps from the measured speed, never a longer demo on a faster machine."""

from dataclasses import replace

import pytest

from mirokit.world.demo_plan import (
    EVAL_SHARE,
    FEW_STEPS,
    HIGH,
    MISSING,
    MIX_SHARE,
    DemoConfig,
    evaluation_images,
    plan_steps,
    short_training,
    variants,
)


def test_a_faster_machine_gets_more_steps_in_the_same_budget():
    cfg = DemoConfig(minutes=7)
    slow = plan_steps(cfg, 320.0, train_img_s=87.0, image_s=0.030, score_s=0.010)
    fast = plan_steps(cfg, 390.0, train_img_s=314.0, image_s=0.0083, score_s=0.0028)
    assert fast["steps"] > 3 * slow["steps"]
    # the plan fits: training + evaluation + margin = the time that was left
    for plan, left in ((slow, 320.0), (fast, 390.0)):
        assert abs(plan["train_seconds"] + plan["eval_seconds"] + plan["margin_seconds"] - left) < 1e-6
        assert plan["steps"] * cfg.batch_size <= plan["train_seconds"] * plan["train_images_per_s"]


def test_two_images_per_prompt_only_when_the_evaluation_fits_its_share_of_the_budget():
    cfg = DemoConfig(minutes=7)
    # at the boundary: 2 images per prompt (without the quality mix) cost just under / just over EVAL_SHARE
    per_image = EVAL_SHARE * cfg.minutes * 60 / evaluation_images(replace(cfg, quality_mix=None), 2)
    assert plan_steps(cfg, 390.0, 314.0, 0.999 * per_image, 0.0)["eval_images_per_prompt"] == 2
    assert plan_steps(cfg, 390.0, 314.0, 1.001 * per_image, 0.0)["eval_images_per_prompt"] == 1
    # the slowest machine of our kind (per-image costs measured on a fast one, x3.9) keeps 2 images
    assert plan_steps(DemoConfig(minutes=9.25), 307.0, 188.0, 0.011, 0.012)["eval_images_per_prompt"] == 2
    assert plan_steps(cfg, 390.0, 314.0, 0.0083, 0.0028)["eval_images_per_prompt"] == 2
    slow = plan_steps(cfg, 320.0, 87.0, 0.030, 0.010)
    assert slow["eval_images_per_prompt"] == 1 and slow["quality_mix"] is None
    assert slow["eval_images"] == evaluation_images(replace(cfg, quality_mix=None), 1)
    assert plan_steps(DemoConfig(minutes=7, eval_images=3), 390.0, 314.0, 0.0083, 0.0028)["eval_images_per_prompt"] == 3
    assert plan_steps(cfg, 10.0, 87.0, 0.030, 0.010)["steps"] == cfg.min_steps  # never fewer than min_steps


def test_the_world_grows_with_the_steps_a_fast_machine_affords():
    from mirokit.world.demo_plan import PARALLEL, plan_world, world_samples

    cfg = DemoConfig(minutes=9.25)
    assert world_samples(cfg, 100) == cfg.min_samples
    assert world_samples(cfg, 6000) == 6000 * cfg.batch_size / cfg.max_epochs
    assert world_samples(DemoConfig(samples=500), 6000) == 500
    slow = plan_world(cfg, 330.0, train_img_s=146.0, image_s=0.012, score_s=0.011, world_s=0.011)
    assert slow == cfg.min_samples  # a slow machine trains few epochs of the smallest world
    fast = plan_world(cfg, 500.0, train_img_s=570.0, image_s=0.003, score_s=0.003, world_s=0.003)
    assert fast > cfg.min_samples
    # the bigger world and the steps it leaves time for fit, and no sample is seen more than max_epochs times
    plan = plan_steps(cfg, 500.0 - fast * 0.003, 570.0, 0.003, 0.003)
    assert plan["steps"] * cfg.batch_size / fast <= cfg.max_epochs * 1.01
    assert (plan["steps"] * cfg.batch_size / (570.0 * PARALLEL) + fast * 0.003
            <= 500.0 - plan["eval_seconds"] - plan["margin_seconds"] + 1e-6)


def test_the_quality_mix_row_only_where_the_budget_affords_it():
    cfg = DemoConfig(minutes=9.25)
    assert variants(cfg)["miro, quality 0.625"] == ("miro", HIGH | {"world_quality": 0.625}, MISSING)
    assert list(variants(DemoConfig(quality_mix=None))) == ["baseline", "miro"]
    # at the boundary: the evaluation with the row costs just under / just over MIX_SHARE of the budget
    per_image = MIX_SHARE * cfg.minutes * 60 / evaluation_images(cfg, 2)
    kept, dropped = (plan_steps(cfg, 400.0, 700.0, f * per_image, 0.0) for f in (0.999, 1.001))
    assert kept["quality_mix"] == 0.625 and kept["eval_images"] == evaluation_images(cfg, 2)
    assert kept["quality_mix_left_out"] is None
    assert dropped["quality_mix"] is None and dropped["quality_mix_left_out"] == 0.625
    assert dropped["eval_images_per_prompt"] == 2
    assert dropped["eval_images"] == evaluation_images(replace(cfg, quality_mix=None), 2)
    assert dropped["steps"] > kept["steps"]  # what the row would have cost goes to training
    # our machine keeps it; one 3.9x slower (the slowest of our kind) trains instead
    assert plan_steps(cfg, 430.0, 790.0, 0.0025, 0.0027)["quality_mix"] == 0.625
    assert plan_steps(cfg, 310.0, 790.0 / 3.9, 0.0025 * 3.9, 0.0027 * 3.9)["quality_mix"] is None
    # fixed images per prompt: the row as configured
    assert plan_steps(replace(cfg, eval_images=2), 310.0, 200.0, 0.01, 0.01)["quality_mix"] == 0.625
    never = plan_steps(replace(cfg, quality_mix=None), 430.0, 790.0, 0.0025, 0.0027)
    assert never["quality_mix"] is None and never["quality_mix_left_out"] is None


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_quality_mix_outside_the_calibrated_range_is_refused(bad):
    with pytest.raises(ValueError, match="quality_mix must be in"):
        DemoConfig(quality_mix=bad)


def test_too_little_training_is_said_with_what_to_do():
    cfg = DemoConfig(minutes=9.25)
    plenty = plan_steps(cfg, 400.0, 700.0, 0.003, 0.003)
    assert plenty["steps"] >= FEW_STEPS and short_training(plenty, cfg.min_steps) is None
    # a slow install ate the budget: fewer steps fit than the minimum
    starved = plan_steps(cfg, 40.0, 30.0, 0.03, 0.03) | {"seconds_before_demo": 400.0}
    assert starved["steps"] == cfg.min_steps > starved["fitted_steps"]
    warning = short_training(starved, cfg.min_steps)
    assert f"cut to the minimum of {cfg.min_steps} steps" in warning and "400 s went to the install" in warning
    assert "make demo" in warning
    few = plan_steps(cfg, 200.0, 60.0, 0.003, 0.003)
    assert cfg.min_steps < few["steps"] < FEW_STEPS
    assert short_training(few, cfg.min_steps).startswith(f"only {few['steps']} training steps")
    assert short_training({"steps": 10}, cfg.min_steps) is None  # fixed --steps: the user asked for it
