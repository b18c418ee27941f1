"""`mirokit eval tune-targets`: search the positive and negative reward targets (and the guidance scale) that
maximise a metric on a tuning split of its prompts, then judge the winner on a disjoint held-out split
against the default targets (all 1 / all 0), and save it as a sampling preset.

Split: prompts with the same text always fall on the same side (ShapesEval repeats prompts), stratified by
tag when the records have one, seeded. Search (deterministic from the seed, `budget` evaluations on the
tuning split, the default first): half random candidates (targets uniform in [0, 1], guidance uniform in its
range), then a (1+1) evolution strategy around the best so far with a shrinking step. Every candidate
samples the same noise (seeded by (seed, prompt, image)), so candidates differ by their settings, not by luck
of the draw. The held-out comparison is paired by prompt; the verdict says whether the tuned settings beat
the defaults there and whether the difference's 95% interval excludes zero. When the command line gives
other targets (--reward / --negative-reward), those are also evaluated on the held-out split and compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirokit.evaluate.pages import fmt_ci, plot_ci_panels, text_table, write_json, write_page
from mirokit.evaluate.settings_eval import evaluate_setting, paired_difference
from mirokit.sampling import SamplingSettings

SEARCHABLE = ("positive", "negative", "guidance")


def split_prompts(records: list[dict], indices: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(tuning, held-out) prompt indices: prompts grouped by text (never on both sides), stratified by "tag"."""
    if not 0 < fraction < 1:
        raise ValueError(f"--tune-fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([seed, 7])
    by_tag: dict[str, dict[str, list[int]]] = {}
    for i in indices:
        by_tag.setdefault(str(records[i].get("tag", "")), {}).setdefault(records[i]["prompt"], []).append(i)
    tune, held = [], []
    for tag in sorted(by_tag):
        texts = sorted(by_tag[tag])
        order = rng.permutation(len(texts))
        cut = int(round(fraction * len(texts)))
        cut = min(max(cut, 1), len(texts) - 1) if len(texts) > 1 else cut
        for rank, t in enumerate(order):
            (tune if rank < cut else held).extend(by_tag[tag][texts[t]])
    if not tune or not held:
        raise ValueError(f"{len(indices)} prompts ({len({records[i]['prompt'] for i in indices})} distinct) cannot be "
                         f"split into non-empty tuning and held-out sets; use more prompts")
    return sorted(tune), sorted(held)


def _candidate(vector: np.ndarray, keys: list[str], base: SamplingSettings,
               search: tuple[str, ...]) -> SamplingSettings:
    """[positive K | negative K | guidance] -> settings (parts not searched stay as in `base`)."""
    k = len(keys)
    changes = {}
    if "positive" in search:
        changes["rewards"] = {key: round(float(v), 3) for key, v in zip(keys, vector[:k])}
    if "negative" in search:
        changes["negative_rewards"] = {key: round(float(v), 3) for key, v in zip(keys, vector[k:2 * k])}
    if "guidance" in search:
        changes.update(guidance=round(float(vector[-1]), 3), text_guidance=None, reward_guidance=None)
    return base.replace(**changes)


def propose(rng: np.random.Generator, step: int, budget: int, best: np.ndarray, low: np.ndarray,
            high: np.ndarray) -> np.ndarray:
    """Candidate `step` (1-based after the default): random in the box for the first half, else the best so far
    plus Gaussian noise whose scale shrinks from 25% to 5% of the box."""
    random_steps = max(1, (budget - 1) // 2)
    if step <= random_steps:
        return rng.uniform(low, high)
    progress = (step - random_steps) / max(1, budget - 1 - random_steps)
    scale = (0.25 - 0.2 * progress) * (high - low)
    return np.clip(best + rng.normal(size=best.shape) * scale, low, high)


def tune_targets(pipe, base: SamplingSettings, records: list[dict], indices: list[int], *, metric, budget: int,
                 tune_fraction: float = 0.5, images_per_prompt: int = 1,
                 guidance_range: tuple[float, float] | None = None, search: tuple[str, ...] = SEARCHABLE,
                 scorers: dict | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Run the search -> the summary dict (trace, best, held-out comparison, verdict, preset)."""
    keys = list(pipe.reward_keys)
    if not keys and ("positive" in search or "negative" in search):
        raise ValueError("this model has no reward keys: nothing to tune but the guidance (use --search guidance)")
    unknown = sorted(set(search) - set(SEARCHABLE))
    if unknown or not search:
        raise ValueError(f"--search takes {', '.join(SEARCHABLE)}; got {', '.join(search) or 'nothing'}")
    if budget < 2:
        raise ValueError("--budget must be >= 2 (the default targets and at least one candidate)")
    g0 = base.guidance
    lo_g, hi_g = guidance_range or (0.5 * g0, 2.0 * g0)
    if not 0 <= lo_g <= hi_g:
        raise ValueError(f"--guidance-range must be 0 <= LO <= HI, got {lo_g},{hi_g}")
    tune, held = split_prompts(records, indices, tune_fraction, seed)
    default = base.replace(rewards={k: 1.0 for k in keys}, negative_rewards={k: 0.0 for k in keys})
    default_vec = np.array([1.0] * len(keys) + [0.0] * len(keys) + [min(max(g0, lo_g), hi_g)])
    low = np.array([0.0] * (2 * len(keys)) + [lo_g])
    high = np.array([1.0] * (2 * len(keys)) + [hi_g])
    rng = np.random.default_rng([seed, 11])
    per_eval = len(tune) * images_per_prompt
    given = base if (base.rewards, base.negative_rewards) != (default.rewards, default.negative_rewards) else None
    bar = tqdm(total=budget * per_eval + (3 if given else 2) * len(held) * images_per_prompt,
               desc=f"tuning ({budget} candidates)", unit="img", disable=not progress, dynamic_ncols=True)
    trace, best_vec, best_value, best_setting = [], default_vec, -np.inf, default
    for step in range(budget):
        vec = default_vec if step == 0 else propose(rng, step, budget, best_vec, low, high)
        setting = default if step == 0 else _candidate(vec, keys, base, search)
        value = evaluate_setting(pipe, setting, records, tune, metric=metric, scorers={},
                                 images_per_prompt=images_per_prompt, bar=bar)["metric"]["value"]
        trace.append({"step": step, "setting": setting.to_preset(), "value": value})
        if np.isfinite(value) and value > best_value:
            best_vec, best_value, best_setting = vec, value, setting
    held_default = evaluate_setting(pipe, default, records, held, metric=metric, scorers=scorers or {},
                                    images_per_prompt=images_per_prompt, bar=bar)
    held_best = held_default if best_setting is default else evaluate_setting(
        pipe, best_setting, records, held, metric=metric, scorers=scorers or {}, images_per_prompt=images_per_prompt,
        bar=bar)
    held_given = None if given is None else evaluate_setting(
        pipe, given, records, held, metric=metric, scorers=scorers or {}, images_per_prompt=images_per_prompt, bar=bar)
    bar.close()
    diff = paired_difference(held_best, held_default, records)
    summary = {"metric_name": metric.name, "budget": budget, "search": list(search), "guidance_range": [lo_g, hi_g],
               "split": {"tune": tune, "held_out": held, "tune_fraction": tune_fraction},
               "trace": trace, "best": {"setting": best_setting.to_preset(), "tune_value": best_value,
                                        "is_default": best_setting is default},
               "default": {"setting": default.to_preset(), "tune_value": trace[0]["value"]},
               "held_out": {"default": _result(held_default), "tuned": _result(held_best), "difference": diff}}
    if given is not None:  # the targets given on the command line, when they are not the defaults
        summary["given"] = {"setting": given.to_preset()}
        summary["held_out"]["given"] = _result(held_given)
        summary["held_out"]["difference_vs_given"] = paired_difference(held_best, held_given, records)
    summary["verdict"] = verdict(summary)
    return summary


def _result(res: dict) -> dict:
    return {"value": res["metric"]["value"], "ci": res["metric"]["ci"], "rewards": res["rewards"]}


def verdict(summary: dict) -> dict:
    """{"beats_default": bool, "significant": bool, "statement": one honest sentence}."""
    name = summary["metric_name"]
    tuned, default = summary["held_out"]["tuned"]["value"], summary["held_out"]["default"]["value"]
    diff = summary["held_out"]["difference"]
    beats = bool(tuned > default) and not summary["best"]["is_default"]
    significant = bool(beats and np.isfinite(diff["low"]) and diff["low"] > 0)
    if summary["best"]["is_default"]:
        text = (f"No candidate beat the default targets on the tuning split ({name} "
                f"{summary['default']['tune_value']:.4f}); the preset keeps the defaults.")
    elif significant:
        text = (f"The tuned settings beat the default all-1/all-0 targets on the held-out split: {name} {tuned:.4f} "
                f"vs {default:.4f} (paired difference {fmt_ci(diff)}, its 95% interval excludes 0).")
    elif beats:
        text = (f"The tuned settings score higher than the defaults on the held-out split ({name} {tuned:.4f} vs "
                f"{default:.4f}), but the paired difference {fmt_ci(diff)} includes 0: not a significant gain.")
    else:
        text = (f"The tuned settings do NOT beat the default targets on the held-out split ({name} {tuned:.4f} vs "
                f"{default:.4f}, difference {fmt_ci(diff)}): the gain on the tuning split "
                f"({summary['best']['tune_value']:.4f} vs {summary['default']['tune_value']:.4f}) did not carry over.")
    if "given" in summary["held_out"]:
        given, vs = summary["held_out"]["given"]["value"], summary["held_out"]["difference_vs_given"]
        text += (f" Against the given targets ({name} {given:.4f} held out) the tuned settings differ by {fmt_ci(vs)}"
                 f"{' (significant)' if np.isfinite(vs['low']) and (vs['low'] > 0 or vs['high'] < 0) else ''}.")
    return {"beats_default": beats, "significant": significant, "statement": text}


def best_preset(summary: dict) -> dict:
    """The tuned settings as a preset (partial settings), with their scores as provenance ("about")."""
    about = {"found_by": "mirokit eval tune-targets", "metric": summary["metric_name"],
             "tune_value": summary["best"]["tune_value"], "held_out_value": summary["held_out"]["tuned"]["value"],
             "held_out_default_value": summary["held_out"]["default"]["value"], **summary["verdict"]}
    return {**summary["best"]["setting"], "about": about}


def write_tune_report(summary: dict, out_dir: str | Path, *, preset_path: str | Path | None = None) -> dict[str, Path]:
    """OUT/summary.json, OUT/preset.json (or `preset_path`), OUT/search.png, OUT/held_out.png, OUT/report.html."""
    from mirokit.evaluate.report import plot_curves
    from mirokit.sampling.presets import save_preset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": write_json(out / "summary.json", summary),
             "preset": save_preset(best_preset(summary), preset_path or out / "preset.json")}
    values = [t["value"] for t in summary["trace"]]
    running = np.maximum.accumulate(np.nan_to_num(np.array(values, dtype=float), nan=-np.inf)).tolist()
    steps = list(range(len(values)))
    paths["search"] = plot_curves({"candidate": (steps, values), "best so far": (steps, running)}, out / "search.png",
                                  xlabel="evaluation (0 = default targets)", ylabel=summary["metric_name"],
                                  title="search on the tuning split")
    ho = summary["held_out"]
    names = {"default": "default (all 1 / all 0)", "given": "given targets", "tuned": "tuned"}
    panels = {label: {summary["metric_name"]: ho[key]["ci"], **ho[key]["rewards"]}
              for key, label in names.items() if key in ho}
    paths["held_out"] = plot_ci_panels(panels, out / "held_out.png", title="held-out split, 95% CI")
    head, rows = tune_table(summary)
    paths["html"] = write_page(
        out, "Reward-target search", intro=[summary["verdict"]["statement"],
                                             f"Preset written to {paths['preset'].name}: pass it as --preset."],
        tables=[("Held-out split", head, rows),
                ("Settings", ["", "positive targets", "negative targets", "guidance"],
                 [[name, _targets(s["rewards"]), _targets(s["negative_rewards"]), s["guidance"]]
                  for name, s in (("default", summary["default"]["setting"]),
                                  *((("given", summary["given"]["setting"]),) if "given" in summary else ()),
                                  ("tuned", summary["best"]["setting"]))])],
        figures={"metric of every candidate on the tuning split": "search.png",
                 "default vs tuned on the held-out split (95% CI)": "held_out.png"}, summary=summary)
    return paths


def _targets(targets: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in targets.items()) or "(none)"


def tune_table(summary: dict) -> tuple[list[str], list[list]]:
    """(header, rows): tuning and held-out values of the default and tuned settings."""
    ho = summary["held_out"]
    return (["settings", "tuning split", "held-out split [95% CI]"],
            [["default all-1/all-0", f"{summary['default']['tune_value']:.4f}", fmt_ci(ho["default"]["ci"])],
             *([["given targets", "", fmt_ci(ho["given"]["ci"])]] if "given" in ho else []),
             ["tuned", f"{summary['best']['tune_value']:.4f}", fmt_ci(ho["tuned"]["ci"])],
             ["tuned - default (paired)", "", fmt_ci(ho["difference"])],
             *([["tuned - given (paired)", "", fmt_ci(ho["difference_vs_given"])]] if "given" in ho else [])])


def format_tune(summary: dict) -> str:
    """The terminal table and the verdict."""
    head, rows = tune_table(summary)
    return text_table(head, rows) + "\n" + summary["verdict"]["statement"]
