"""The demo's report: OUT/report.html, OUT/summary.json and OUT/figures/*.png (from the demo's summary)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mirokit.evaluate import report
from mirokit.evaluate.pages import fmt_ci, plot_ci_grid, plot_ci_panels, text_table, write_page
from mirokit.world.demo_plan import short_training

LABELS = {"shapes_eval": "ShapesEval overall", "colour_fidelity": "colour fidelity",
          "single_object_class": "single-object class found"}


def standard_errors(ci: dict) -> float:
    """How many standard errors the interval's centre is from 0 (half-width / 1.96 = one standard error)."""
    se = ci["half_width"] / 1.96
    return ci["mean"] / se if math.isfinite(se) and se > 0 else float("nan")


def difference_table(diffs: dict[str, dict]) -> tuple[list[str], list[list]]:
    """(header, rows) of the paired differences {row: {metric: interval}}: one line per metric, for every MIRO
    row its difference to the baseline [95% interval] and how many standard errors that is from 0."""
    names = list(diffs)
    header = ["metric", *(h for n in names for h in (f"{n} - baseline [95%]", "SE"))]
    rows = [[LABELS.get(k, k), *(c for n in names
                                 for c in (fmt_ci(diffs[n][k], 3), f"{standard_errors(diffs[n][k]):+.1f}"))]
            for k in diffs[names[0]]]
    return header, rows


def _grid_indices(captions: list[str], per_tag: int = 2) -> list[int]:
    """Indices of the first `per_tag` distinct prompts of each ShapesEval tag (in file order: 6 tags)."""
    from mirokit.world.prompts import load_shapes_eval

    tag_of = {m["prompt"]: m["tag"] for m in load_shapes_eval()}
    chosen, seen, count = [], set(), {}
    for i, c in enumerate(captions):
        tag = tag_of.get(c, "")
        if c not in seen and count.get(tag, 0) < per_tag:
            seen.add(c)
            count[tag] = count.get(tag, 0) + 1
            chosen.append(i)
    return chosen


def control_guidance(settings: dict) -> float:
    """The controllability sweep's guidance scale from a summary's settings (None: the comparison's)."""
    w = settings.get("control_guidance")
    return sampler(settings).guidance if w is None else w


def _interval(settings: dict) -> str:
    """", guidance only at signal levels [lo, hi]" when the demo sampled with a guidance interval."""
    interval = sampler(settings).guidance_interval
    return "" if interval is None else f", guidance only at signal levels [{interval[0]:g}, {interval[1]:g}]"


def sampler(settings: dict):
    """The SamplingSettings the demo sampled with, from a summary's settings (its partial `sampling`)."""
    from mirokit.sampling import resolve

    return resolve(None, None, settings["sampling"])


def write_demo_report(out: Path, summary: dict, samples: dict[str, np.ndarray], captions: list[str],
                      runs: dict[str, Path]) -> Path:
    """Figures, report.html and summary.json for a finished demo -> the report's path."""
    from mirokit.train.metrics import read_metrics

    out, figures = Path(out), {}
    fig_dir = out / "figures"
    models, plan, control = summary["models"], summary["plan"], summary["controllability"]
    pick = _grid_indices(captions)
    grids = "Samples: the same prompts and noise for both models (two prompts per ShapesEval task)"
    figures[grids] = report.plot_grids(
        {n: [s[i] for i in pick] for n, s in samples.items()}, [captions[i] for i in pick], fig_dir / "grids.png",
        columns=len(pick))
    figures["ShapesEval accuracy per task"] = report.plot_bars(
        {n: {**m["per_tag"], "overall": m["shapes_eval"]["mean"]} for n, m in models.items()},
        fig_dir / "shapes_eval.png")
    figures["Quality of the samples with 95% intervals (rewards are raw scores)"] = plot_ci_panels(
        {n: {LABELS.get(k, k): m[k] for k in ("shapes_eval", "colour_fidelity", "single_object_class")}
         | m["rewards"] for n, m in models.items()}, fig_dir / "metrics.png")
    curves = {n: ([r["step"] for r in rows], [r["mse"] for r in rows])
              for n, rows in ((n, read_metrics(Path(d).parent / "metrics.jsonl")) for n, d in runs.items())}
    figures["Training loss (velocity MSE)"] = report.plot_curves(curves, fig_dir / "loss.png", xlabel="step",
                                                                 ylabel="velocity MSE", log_y=True)
    others = "at 1" if summary["settings"].get("control_others") == "high" else "missing"
    figures[f"Controllability: one reward's target swept 0 -> 1 (the others {others}), that reward measured on "
            "MIRO's samples (mean and 95% interval)"] = plot_ci_grid(
        {f"{k} (Spearman {v['spearman']:.2f})": {"MIRO": (v["targets"], v["measured"])} for k, v in control.items()},
        fig_dir / "control.png", xlabel="target")
    figures = {caption: str(Path(path).relative_to(out)) for caption, path in figures.items()}

    tags = list(next(iter(models.values()))["per_tag"])
    tables = [
        ("ShapesEval (GenEval's rules on the pixel detector; 95% intervals)", ["model", "overall", *tags],
         [[n, fmt_ci(m["shapes_eval"], 3), *(f"{m['per_tag'][t]:.3f}" for t in tags)] for n, m in models.items()]),
        ("MIRO minus baseline, paired by prompt (same prompts, same noise)",
         *difference_table(summary["minus_baseline"])),
        ("Mean raw rewards of the samples (95% intervals)", ["model", *reward_keys_of(models)],
         [[n, *(fmt_ci(m["rewards"][k], 3) for k in reward_keys_of(models))] for n, m in models.items()]),
        ("Alignment details (95% intervals)", ["model", "colour fidelity", "single-object class found"],
         [[n, fmt_ci(m["colour_fidelity"], 3), fmt_ci(m["single_object_class"], 3)] for n, m in models.items()]),
        ("Controllability (MIRO): measured reward at each target", ["reward", *map(str, next(iter(control.values()))[
            "targets"]), "Spearman"],
         [[k, *(f"{c['mean']:.3f}" for c in v["measured"]), f"{v['spearman']:.2f}"] for k, v in control.items()]),
    ]
    steps = plan["steps"]
    before = plan.get("seconds_before_demo") or 0.0
    intro = [f"Done in {summary['seconds']:.0f} s of a {plan['budget_seconds']:.0f} s budget"
             + (f" (counted from --started-at, e.g. the start of make demo: {before:.0f} s passed before the demo, the "
                f"install)" if before else "")
             + ". Both models trained "
             f"{steps} steps of {summary['settings']['batch_size']} images "
             f"({steps * summary['settings']['batch_size']:,} images each)"
             + (f"; this machine trained {plan['train_images_per_s']:.0f} images/s per model on one "
                f"core, so that is what the budget afforded." if "train_images_per_s" in plan else "."),
             *([f"Both trained in {p['precision']} ({p['chosen_by']})."] if (p := plan.get("precision")) else []),
             *([f"Warning: {warning}"] if (warning := short_training(plan, summary["settings"]["min_steps"])) else []),
             "Everything below was computed in this run, on this machine: another machine (or seed) gives other "
             "numbers; BENCHMARKS.md lists the ranges we measured."]
    notes = [f"World: {plan['world_samples']} samples of the demo world (objects on a 2x2 grid, ~40% of "
             "captions wrong, ~50% of images degraded, 10% with an object cut by the border), scored by the three "
             "built-in rewards and calibrated to 64 quantile bins; both generators are the same latent UNet on the "
             "shipped world autoencoder's 4x8x8 latents.",
             f"Sampling: {sampler(summary['settings']).solver}, {sampler(summary['settings']).steps} steps, guidance "
             f"w = {sampler(summary['settings']).guidance:g}{_interval(summary['settings'])}. 'miro' asks for every "
             "reward at 1 and is guided against the trained unconditional branch (empty prompt, rewards missing), "
             "like the baseline's text guidance."
             + (f" '{plan['mix_row']}' asks for every reward at 1 except world_quality at {mix:g}: a reward mix "
                "(the paper's analogue: an aesthetic target of 0.625 raised GenEval from 67.7 to 75)."
                if (mix := summary["settings"].get("quality_mix")) is not None else "")
             + (f" The reward-mix row (quality {left_out:g}) was left out: with it the evaluation would take more "
                f"than {plan['mix_share']:.0%} of the budget on this machine, so that time went to training."
                if (left_out := plan.get("quality_mix_left_out")) is not None else "")
             + (" 'miro, away from all-0' uses the official negative targets instead (empty prompt with every reward "
                "at 0); the model never sees that combination in training (caption dropout also drops the rewards)."
                if "miro, away from all-0" in summary["models"] else ""),
             "Intervals are 95%: ShapesEval's is stratified by task (its overall is the mean of the six task "
             "accuracies); SE = how many standard errors the paired difference is from zero. Colour fidelity: "
             "of the colour clauses whose objects were found, the share with the asked colour (reward hacking "
             "would show here). The controllability sweep uses other prompts and noise than the comparison, "
             f"guidance w = {control_guidance(summary['settings']):g}, and sets one reward's target with the others "
             + ("at 1." if summary["settings"].get("control_others") == "high" else
                "missing (that reward's own effect, as a user who sets only that target gets it).")]
    return write_page(out, "MIRO vs a no-reward baseline on the shapes world", intro=intro, tables=tables,
                      figures=figures, notes=notes, summary=None)


def reward_keys_of(models: dict) -> list[str]:
    """The reward keys of the models' reward tables, in order."""
    return list(next(iter(models.values()))["rewards"])


def terminal_summary(summary: dict) -> str:
    """The lines `mirokit demo` prints at the end."""
    models = summary["models"]
    rows = [[n, fmt_ci(m["shapes_eval"], 3), *(f"{m['rewards'][k]['mean']:.3f}" for k in reward_keys_of(models))]
            for n, m in models.items()]
    lines = [text_table(["model", "ShapesEval [95%]", *reward_keys_of(models)], rows), "",
             text_table(*difference_table(summary["minus_baseline"])),
             "", "control (Spearman of measured vs target): " + ", ".join(
                 f"{k} {v['spearman']:.2f}" for k, v in summary["controllability"].items())]
    if (left_out := summary["plan"].get("quality_mix_left_out")) is not None:
        lines.append(f"reward-mix row (quality {left_out:g}) left out: the budget went to training "
                     f"(docs/DEMO.md \"Reward mix\")")
    if warning := short_training(summary["plan"], summary["settings"]["min_steps"]):
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)
