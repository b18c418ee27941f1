"""A studio: loaded models, the job queue, the reward meters and the history; what the HTTP server calls.

`Studio.submit(client, request)` plans the request (studio.requests) and queues it; the worker runs each call
through `MiroPipeline.__call__` with a per-step callback (progress, previews every 0.3 s, cancel), measures the
images, writes each PNG with its settings to the history and returns one result per image: its file, label,
seed and image index, the settings used, the asked targets with their meaning, the measured scores, and the
same image as a `mirokit sample` command line and as Python.
"""

from __future__ import annotations

import io
import math
import shlex
from pathlib import Path

from mirokit.evaluate.stats import spearman
from mirokit.sampling.options import to_argv, to_keywords
from mirokit.studio import requests as R
from mirokit.studio.history import History, png_bytes
from mirokit.studio.jobs import DONE, Call, Job, JobQueue
from mirokit.studio.scores import RewardMeter, target_meaning

EXAMPLES = ["a photo of a red circle", "a blue square and a yellow triangle", "two green stars",
            "a red fox in the snow", "a bowl of ramen on a wooden table", "a lighthouse at dusk, oil painting",
            "a cat wearing a tiny hat", "an astronaut riding a horse"]
"""example prompts when the studio is not given its own (`mirokit studio --examples FILE`)"""


class Studio:
    """models: {name: MiroPipeline}; sources: {name: the folder or hub id it was loaded from} and variants: {name:
    its variant subfolder}, for "copy as CLI / Python"."""

    def __init__(self, models: dict, out_dir: str | Path, *, sources: dict[str, str] | None = None,
                 variants: dict[str, str] | None = None, limits: R.Limits | None = None,
                 scorer_options: dict[str, dict] | None = None,
                 examples: list[str] | None = None, max_queued_per_client: int = 4, dtype: str = "fp32"):
        if not models:
            raise ValueError("the studio needs at least one model")
        self.models = dict(models)
        self.sources = {name: str(path) for name, path in (sources or {}).items()}
        self.variants = dict(variants or {})
        self.dtype = dtype
        # the generators' weights ("fp32" or "bf16", `mirokit studio --dtype`), repeated in "copy as CLI / Python"
        self.limits = limits or R.Limits()
        self.examples = list(examples or EXAMPLES)
        self.meters = {name: RewardMeter(pipe, scorer_options) for name, pipe in self.models.items()}
        self.history = History(Path(out_dir) / "history")
        self.queue = JobQueue(self._run_call, preview=lambda make: make(),
                              max_queued_per_client=max_queued_per_client, on_finish=self._finish)

    # ---- what the page reads -----------------------------------------------------------------------------------
    def info(self) -> dict:
        """The models (reward keys, what each target on the 1/63 grid means, default settings), presets,
        examples and limits."""
        from mirokit.sampling import SamplingSettings, resolve
        from mirokit.sampling.options import studio_controls
        from mirokit.sampling.presets import SAMPLER_PRESETS
        from mirokit.sampling.solvers import SOLVERS

        models = []
        for name, pipe in self.models.items():
            meter = self.meters[name]
            meanings = {key: [target_meaning(pipe.calibration, key, k / 63) for k in range(64)]
                        for key in pipe.reward_keys}
            models.append({"name": name, "source": self.sources.get(name, name), "reward_keys": pipe.reward_keys,
                           "defaults": resolve(None, None, pipe.sampler_defaults).to_json(),
                           "meanings": meanings, "measured_keys": meter.keys,
                           "unavailable_scorers": dict(meter.unavailable)})
        presets = {name: {k: v for k, v in p.items() if k != "about"} | {"about": p.get("about", {})}
                   for name, p in SAMPLER_PRESETS.items()}
        return {"models": models, "presets": presets, "solvers": SOLVERS.known(), "examples": self.examples,
                "sampling_options": studio_controls(SamplingSettings),
                "limits": vars(self.limits), "modes": list(R.MODES)}

    def submit(self, client: str, request: dict) -> Job:
        """Plan and queue `request` for `client` (a bad request is a one-line ValueError)."""
        calls = R.plan(request, self.models, self.limits)
        return self.queue.submit(client, request.get("mode", "generate"), request, calls)

    # ---- the worker's side -------------------------------------------------------------------------------------
    def _run_call(self, job: Job, call: Call, on_step) -> list[dict]:
        pipe = self.models[call.model]
        kwargs = dict(call.kwargs)
        prompt = kwargs.pop("prompt")

        def callback(progress) -> bool:
            def preview() -> bytes:
                buffer = io.BytesIO()
                pipe.image_space.to_pil(progress.estimate[:1].float())[0].save(buffer, format="PNG")
                return buffer.getvalue()

            return on_step(progress.step, progress.total, preview)

        out = pipe(prompt, callback=callback, **kwargs)
        scores = self.meters[call.model].measure(out.images, [prompt] * len(out.images))
        asked = {key: out.settings.rewards.get(key, 1.0) for key in pipe.reward_keys}
        results = []
        for (_, image_index), image, measured in zip(out.indices, out.images, scores):
            index = len(job.results) + len(results)
            record = {"index": index, "model": call.model, "mode": job.mode, "label": call.label,
                      "meta": dict(call.meta), "prompt": prompt, "image": image_index,
                      "settings": out.settings.to_json(), "asked": asked,
                      "asked_meaning": {k: target_meaning(pipe.calibration, k, v) for k, v in asked.items()},
                      "scores": measured, "evaluations": out.settings.function_evaluations}
            record["cli"], record["python"] = self._as_code(call.model, prompt, out.settings, image_index)
            record["file"] = self.history.write_image(job.id, index, png_bytes(image, record))
            results.append(record)
        if call.meta.get("role") == "pool":
            _mark_selected(results, call.meta["key"])
        return results

    def _as_code(self, model: str, prompt: str, settings, image_index: int) -> tuple[str, str]:
        """The image as a `mirokit sample` command and as Python (same pixels: same seed and settings)."""
        source, variant = self.sources.get(model, model), self.variants.get(model)
        cli = ["mirokit", "sample", "--model", source, *(["--variant", variant] if variant else []),
               "--prompt", prompt, "--num-images", str(image_index + 1)]
        skip = ("batch_size", "guidance") if settings.separate_guidance else ("batch_size",)
        cli += [*to_argv(settings, skip), *(["--dtype", self.dtype] if self.dtype != "fp32" else []), "--out",
                "samples/"]
        load = f"{source!r}, variant={variant!r}" if variant else repr(source)
        load += ").to(dtype=torch.bfloat16" if self.dtype == "bf16" else ""
        header = "import torch\n" if self.dtype == "bf16" else ""
        python = (f"{header}from mirokit import MiroPipeline\n\npipe = MiroPipeline.from_pretrained({load})\n"
                  f"out = pipe({prompt!r}, num_images={image_index + 1},\n           {to_keywords(settings, skip)})\n"
                  f"out.images[{image_index}].save('image.png')")
        return " ".join(shlex.quote(part) for part in cli), python

    def _finish(self, job: Job, status: str) -> None:
        if status == DONE:
            job.summary = summarize(job)
            self.history.write_job(job)
        else:  # cancelled or failed: no history entry, no partial images left behind
            self.history.forget(job.id)


def _mark_selected(results: list[dict], key: str) -> None:
    """Mark the pool image with the highest measured `key` as selected (none when `key` could not be measured)."""
    scored = [(r["scores"][key]["raw"], r["index"]) for r in results if key in r["scores"]]
    best = max(scored)[1] if scored else None
    for r in results:
        r["meta"]["selected"] = r["index"] == best


def summarize(job: Job) -> dict:
    """Per mode: the sweep's Spearman of asked target vs measured raw score, the ask-vs-select comparison, the grid's
    Pareto front (indices of results no other result beats on both rewards)."""
    results = job.results
    if job.mode == "sweep" and results:
        key = results[0]["meta"]["key"]
        # raw scores: the calibrated values saturate at the top bin, the raw ones still rank the images
        pairs = [(r["meta"]["target"], r["scores"][key]["raw"]) for r in results if key in r["scores"]]
        rho = spearman([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else math.nan
        return {"key": key, "spearman": None if math.isnan(rho) else rho,
                "measured": len(pairs)}
    if job.mode == "pareto" and results:
        a, b = results[0]["meta"]["keys"]
        points = [(r["scores"][a]["raw"], r["scores"][b]["raw"], r["index"]) for r in results
                  if a in r["scores"] and b in r["scores"]]
        front = [i for x, y, i in points if not any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for x2, y2, _ in points)]
        return {"keys": [a, b], "front": sorted(front)}
    if job.mode == "ask_select" and results:
        key = results[0]["meta"]["key"]
        ask = next(r for r in results if r["meta"].get("role") == "ask")
        chosen = next((r for r in results if r["meta"].get("selected")), None)
        raw = lambda r: None if r is None else r["scores"].get(key, {}).get("raw")
        return {"key": key,
                "ask": {"index": ask["index"], "score": raw(ask), "evaluations": ask["meta"]["evaluations"]},
                "select": {"index": None if chosen is None else chosen["index"], "score": raw(chosen),
                           "evaluations": next(r["meta"]["evaluations"] for r in results
                                               if r["meta"].get("role") == "pool")}}
    return {}
