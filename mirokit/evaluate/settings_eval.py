"""One sampling setting evaluated on a metric's prompts: the building block of sweeps and target search.

A setting is a SamplingSettings (targets, solver, steps, guidance, seed, ...). Evaluating it samples the prompts
(noise from (seed, prompt, image), so two settings see the same noise), scores the images with the
metric and with reward scorers, and returns the metric's value with a 95% interval (stratified by tag for
GenEval-schema prompts when the metric's value is a mean of per-tag means, as GenEval's overall; else a
t-interval clustered by prompt) and each reward's mean with its interval.
"""

from __future__ import annotations

import numpy as np

from mirokit.evaluate.samples import sample_and_score
from mirokit.evaluate.stats import mean_ci, paired_mean_ci, stratified_mean_ci


def build_metric(spec: str, prompts: str | None = None, scorer_options: dict | None = None,
                 metric_options: dict | None = None):
    """A registered metric from its spec ("shapes", "geneval", "reward:KEY"); `prompts` is the prompt set of a
    reward metric, or replaces another metric's own set if that metric accepts a `prompts` option;
    `scorer_options` = {key: {option: value}} gives a reward metric its scorer's options; `metric_options` are
    keyword options of the metric itself (e.g. geneval's detector folder)."""
    import inspect

    from mirokit.evaluate.metrics import METRICS, parse_metric

    name, _, key = spec.partition(":")
    options = dict((scorer_options or {}).get(key, {})) if name == "reward" else {}
    options.update(metric_options or {})
    if prompts is not None:
        if "prompts" not in inspect.signature(METRICS.get(name)).parameters:
            raise ValueError(f"metric {spec!r} has its own prompt set; drop --prompts")
        options["prompts"] = prompts
    return parse_metric(spec, **options)


def metric_interval(per_image: np.ndarray, records: list[dict], groups: list[int], value: float) -> dict:
    """95% interval of a metric whose summary is `value`: the t-interval clustered by prompt when its centre is
    the value; else, for records with a "tag", the stratified interval if the value is the mean of per-tag means
    (GenEval's overall). "centred" says whether the interval's centre is the metric's value."""
    ci = mean_ci(per_image, groups)
    if np.isclose(ci["mean"], value, rtol=1e-9, atol=1e-12, equal_nan=True):
        return {**ci, "centred": True}
    if records and all("tag" in r for r in records):
        strat = stratified_mean_ci(per_image, [r["tag"] for r in records], groups)
        if np.isclose(strat["mean"], value, rtol=1e-9, atol=1e-12):
            return {**strat, "centred": True}
    return {**ci, "centred": False}


def evaluate_setting(pipe, settings, records: list[dict], indices: list[int], *, metric, scorers: dict,
                     images_per_prompt: int = 1, bar=None) -> dict:
    """Sample records[indices] with `settings` (SamplingSettings) -> {"metric": {"value", "ci"}, "rewards":
    {key: ci}, "per_image": (N,) metric scores, "pairs": [(prompt, image)]}."""
    res = sample_and_score(pipe, records, indices, settings, images_per_prompt=images_per_prompt, scorers=scorers,
                           metric=metric, bar=bar)
    recs = [records[i] for i, _ in res["pairs"]]
    groups = [i for i, _ in res["pairs"]]
    value = metric.summarize(res["metric"], recs)
    return {"metric": {"value": value, "ci": metric_interval(res["metric"], recs, groups, value)},
            "rewards": {k: mean_ci(v, groups) for k, v in res["scores"].items()},
            "per_image": res["metric"], "pairs": res["pairs"]}


def paired_difference(a: dict, b: dict, records: list[dict]) -> dict:
    """Interval of a - b for two evaluate_setting results on the same prompts and images, paired by prompt,
    stratified by tag when either metric interval is (a mean-of-tag-means metric: the centre is then the
    difference of the two metric values), else a t-interval (mirokit.evaluate.stats.paired_mean_ci)."""
    if a["pairs"] != b["pairs"]:
        raise ValueError("a paired difference needs both results on the same (prompt, image) pairs")
    groups = [i for i, _ in a["pairs"]]
    stratified = "strata" in a["metric"]["ci"] or "strata" in b["metric"]["ci"]
    return paired_mean_ci(a["per_image"], b["per_image"], groups,
                          [records[i]["tag"] for i in groups] if stratified else None)
