"""The shapes-world experiment shared by `mirokit demo` and bench/convergence.py.

demo world (mirokit.world.sampling.demo_world_config) -> built-in rewards (raw) -> calibration -> latents of
the world autoencoder -> train variants (baseline, MIRO, ...) side by side -> sample ShapesEval prompts ->
ShapesEval, mean rewards and colour fidelity, each with a 95% interval (mirokit.evaluate.stats).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mirokit.atomic import save_safetensors_atomic, write_parquet_atomic
from mirokit.data.source import CALIBRATION_FILE
from mirokit.world.source import WORLD_REWARDS, score_images


@dataclass(kw_only=True)
class ExperimentConfig:
    """Budget and settings of one shapes-world comparison."""

    out_dir: str = "demo_out"
    """output folder (runs/ holds the training runs)"""
    num_samples: int = 8000
    """world samples generated and scored"""
    seed: int = 0
    """seed of the world, the weights and the sampling noise"""
    steps: int = 1000
    """training steps per model"""
    batch_size: int = 32
    """training batch size"""
    sampling: dict = field(default_factory=lambda: {"solver": "dpm++2m", "steps": 10, "guidance": 3.0})
    """partial sampling settings (mirokit.sampling.SamplingSettings' fields) stored with every model and used to
    sample it (dpm++2m at 10 steps matched Euler at 20 on the demo's models); the noise seed is `seed`"""
    config: str = "demo_world"
    """run config of every model (file or built-in name)"""
    overrides: list[str] = field(default_factory=list)
    """extra `key=value` overrides for every model"""
    workers: int = 2
    """processes scoring the world"""

    def __post_init__(self):
        from mirokit.sampling import check_partial

        check_partial(self.sampling, "sampling")


def build_world(exp: ExperimentConfig, progress: bool = True, timings: dict | None = None, synthetic: bool = False):
    """The demo world, encoded by the shipped autoencoder, with calibrated built-in rewards attached ->
    (dataset (calibration in `dataset.info`), latents (N, C, h, w)). `timings`, if given, receives the
    seconds spent on {"images": rendering, encoding and decoding, "scores": scoring}.

    The rewards score the *decoded* latents, the images a latent model can produce: the small world
    autoencoder is not lossless (it smooths JPEG blocks and loses some contrast), and scores of images the
    generator cannot express would teach it targets it cannot meet (control would stop being monotonic).
    With `synthetic`, the decoded images are also recaptioned by the world's detector captioner and scored with
    those captions; one calibration is fitted on both captions' scores (as `mirokit calibrate --caption`), and
    the synthetic captions are attached with their own scores (`dataset.set_synthetic`).
    """
    from mirokit.data.calibration import Calibration
    from mirokit.evaluate.samples import to_uint8
    from mirokit.world.ae_space import WorldAESpace
    from mirokit.world.dataset import WorldDataset
    from mirokit.world.sampling import demo_world_config

    start = time.perf_counter()
    dataset = WorldDataset(exp.num_samples, demo_world_config(exp.seed))
    space = WorldAESpace()
    latents = space.encode(dataset.images(list(range(len(dataset)))))
    seen = np.concatenate([to_uint8(space.to_pil(latents[i:i + 512])) for i in range(0, len(latents), 512)])
    middle = time.perf_counter()
    raw = score_images(seen, dataset.captions, WORLD_REWARDS, progress=progress, workers=exp.workers)
    if timings is not None:
        timings.update(images=middle - start, scores=time.perf_counter() - middle)
    if not synthetic:
        calibration = Calibration.fit(raw)
        dataset.set_scores(WORLD_REWARDS, calibration.apply_all(raw, WORLD_REWARDS), calibration=calibration)
        return dataset, latents
    from PIL import Image

    from mirokit.world.captioner import WorldCaptioner

    captioner = WorldCaptioner()
    recaptioned = []
    for i in range(0, len(seen), 512):
        chunk = [Image.fromarray(a) for a in seen[i:i + 512]]
        recaptioned += captioner.caption(chunk, [None] * len(chunk))
    raw_synthetic = score_images(seen, recaptioned, WORLD_REWARDS, progress=progress, workers=exp.workers)
    calibration = Calibration.fit({k: np.concatenate([raw[k], raw_synthetic[k]]) for k in WORLD_REWARDS})
    dataset.set_scores(WORLD_REWARDS, calibration.apply_all(raw, WORLD_REWARDS), calibration=calibration)
    dataset.set_synthetic(recaptioned, calibration.apply_all(raw_synthetic, WORLD_REWARDS))
    return dataset, latents


def synthetic_overrides(exp: ExperimentConfig, dataset) -> list[str]:
    """Write the dataset's synthetic captions and their calibrated scores to OUT/runs/world_synthetic.parquet ->
    the override that makes a run draw them (data.synthetic; the caption mix is the config's, official 0.5)."""
    import pyarrow as pa

    captions, values = dataset.synthetic
    path = Path(exp.out_dir) / "runs" / "world_synthetic.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {"caption": pa.array(captions, pa.string())}
    columns.update({k: pa.array(values[:, j].numpy(), pa.float32()) for j, k in enumerate(dataset.reward_keys_seen)})
    write_parquet_atomic(path, pa.table(columns))
    return [f"data.synthetic={path}"]


def save_latents(latents: torch.Tensor, out_dir: Path) -> tuple[Path, list[str]]:
    """Write OUT/world_latents.safetensors -> (its path, the config overrides that make a run train on them:
    data.latents and the image space's per-channel normalisation and fingerprint)."""
    from mirokit.world.ae_space import WorldAESpace

    normed = WorldAESpace().with_normalisation(latents)
    path = Path(out_dir) / "world_latents.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors_atomic(path, {"latents": latents.contiguous()})
    scale = "[" + ",".join(f"{v:.6g}" for v in normed.config.scale) + "]"
    bias = "[" + ",".join(f"{v:.6g}" for v in normed.config.bias) + "]"
    return path, [f"data.latents={path}", f"image_space.scale={scale}", f"image_space.bias={bias}",
                  f"image_space.fingerprint={normed.config.fingerprint}"]


def variant_overrides(name: str, reward_keys: list[str], exp: ExperimentConfig) -> list[str]:
    """Config overrides of one variant: its run folder, reward keys, the shared budget and the demo's sampler
    (stored with the model: `mirokit sample` on it samples as the demo does)."""
    keys = "[" + ",".join(reward_keys) + "]"
    negative = dict.fromkeys(reward_keys)  # None: guided away from the trained unconditional branch
    sampling = "sampling=" + json.dumps({**exp.sampling, "negative_rewards": negative})
    return [f"out_dir={Path(exp.out_dir) / 'runs' / name}", f"model.reward_keys={keys}", sampling,
            f"train.steps={exp.steps}",
            f"optim.total_steps={exp.steps}", f"train.batch_size={exp.batch_size}", f"train.seed={exp.seed}",
            f"data.seed={exp.seed}", f"data.num_samples={exp.num_samples}", *exp.overrides]


def data_overrides(exp: ExperimentConfig, dataset, latents: torch.Tensor) -> tuple[Path, list[str]]:
    """Write what a run reads of `dataset`'s world to OUT/runs/ once (latents (N, C, h, w), calibrated scores
    as parquet, calibration), so the runs neither rescore nor re-encode -> (the latents' path, the overrides
    pointing a run at them)."""
    from mirokit.world.source import save_scores

    root = Path(exp.out_dir) / "runs"
    latent_path, latent_overrides = save_latents(latents, root)
    scores, calibration = root / "world_scores.parquet", root / CALIBRATION_FILE
    save_scores(dataset, scores)
    dataset.info.calibration.save(calibration)
    return latent_path, [f"data.scores={scores}", f"data.calibration={calibration}", *latent_overrides]


def decide_precision(exp: ExperimentConfig) -> dict:
    """Decide once, on one thread (what each side-by-side run gets), the precision every run of the experiment
    trains in (`train.precision: auto` on the MIRO variant's model: mirokit.train.precision), append it to
    `exp.overrides` so that no run decides on its own, and return the record (also OUT/runs/precision.json)."""
    from mirokit.encoders.text import build_text_encoder
    from mirokit.models.generator import MiroGenerator
    from mirokit.train.config import load_run_config
    from mirokit.train.module import TrainModule
    from mirokit.train.precision import measure_cpu_bf16, resolve_precision, synthetic_loss

    cfg = load_run_config(exp.config, variant_overrides("miro", WORLD_REWARDS, replace(exp, steps=max(exp.steps, 1))))
    text_encoder = build_text_encoder(cfg.text_encoder)
    cfg = replace(cfg, model=replace(cfg.model, text_dim=text_encoder.dim))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(cfg.train.seed)
        module = TrainModule(MiroGenerator(cfg.model), text_encoder)
        loss = synthetic_loss(cfg, cfg.train.batch_size, text_encoder.max_length,
                              captions=module.text_encoder is not None)
        _, record = resolve_precision(cfg.train.precision, torch.device("cpu"), Path(exp.out_dir) / "runs",
                                      lambda: measure_cpu_bf16(module, loss))
    finally:
        torch.set_num_threads(threads)
    exp.overrides = [*exp.overrides, f"train.precision={record['precision']}"]
    return record


def probe_images_per_second(exp: ExperimentConfig, data: list[str], steps: int = 24) -> tuple[float, Path]:
    """Train the MIRO variant for `steps` steps in this process on one thread (what each side-by-side run
    gets) -> (training images per second after warm-up, the probe's exported model)."""
    from mirokit.train.config import load_run_config
    from mirokit.train.loop import train
    from mirokit.train.metrics import read_metrics

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    probe = ExperimentConfig(**{**vars(exp), "steps": steps, "out_dir": str(Path(exp.out_dir) / "probe")})
    cfg = load_run_config(exp.config, [*variant_overrides("miro", WORLD_REWARDS, probe), *data,
                                       "train.progress=false", "train.log_every=4", "train.checkpoint_every=0"])
    try:
        model = train(cfg)
    finally:
        torch.set_num_threads(threads)
    rows = read_metrics(Path(cfg.out_dir) / "metrics.jsonl")
    late = [r["images_per_s"] for r in rows if r["step"] > steps // 2 and r.get("images_per_s")]
    return float(np.median(late)), model


def train_in_parallel(variants: dict[str, list[str]], exp: ExperimentConfig, data: list[str], *,
                      threads_each: int = 1, progress: bool = True, extra: dict[str, list[str]] | None = None
                      ) -> dict[str, Path]:
    """Train variants {name: reward keys} side by side as `mirokit train` processes on the world given by
    `data` (see data_overrides). One thread per process uses a small CPU better than two threads in one
    process. Logs: OUT/runs/NAME.log; returns {name: exported model folder}."""
    import os
    import subprocess
    import sys

    from mirokit.train.config import resolve_config
    from mirokit.train.metrics import read_metrics

    root = Path(exp.out_dir) / "runs"
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads_each), MKL_NUM_THREADS=str(threads_each))
    procs = {}
    for name, keys in variants.items():
        cmd = [sys.executable, "-m", "mirokit.cli.main", "train", "--config", resolve_config(exp.config),
               *variant_overrides(name, keys, exp), *data, f"train.threads={threads_each}", "train.progress=false",
               *(extra or {}).get(name, [])]
        log = open(root / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    bar = tqdm(total=exp.steps * len(procs), desc="training " + " + ".join(procs), unit="step",
               disable=not progress, dynamic_ncols=True)
    while any(p.poll() is None for p, _ in procs.values()):
        time.sleep(1)
        done = 0
        for name in procs:
            path = root / name / "metrics.jsonl"
            rows = read_metrics(path) if path.is_file() else []
            done += rows[-1]["step"] if rows else 0
        bar.update(done - bar.n)
    bar.update(bar.total - bar.n)
    bar.close()
    for _, log in procs.values():
        log.close()
    failed = [name for name, (p, _) in procs.items() if p.returncode != 0]
    if failed:
        tail = (root / f"{failed[0]}.log").read_text().strip().splitlines()[-1:]
        raise RuntimeError(f"training {failed[0]} failed (see {root / failed[0]}.log): {' '.join(tail)}")
    return {name: root / name / "model" for name in procs}


def sample_prompts(model, prompts: list[str], exp: ExperimentConfig, *, rewards: dict | None = None,
                   negative: dict | None = None, seed: int | None = None) -> np.ndarray:
    """Sample one image per prompt from a model folder or a loaded MiroPipeline -> (N, H, W, 3) uint8.
    Image i starts from the noise of (seed, i, 0), as in the evaluation commands (mirokit.evaluate.samples);
    reward-free models ignore the targets; a target None is "missing" (the negative branch {key: None} is
    the trained unconditional: empty prompt, no rewards)."""
    from mirokit.evaluate.samples import render
    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling import resolve

    pipe = model if isinstance(model, MiroPipeline) else MiroPipeline.from_pretrained(model)
    keys = set(pipe.reward_keys)
    settings = resolve({**exp.sampling, "rewards": {k: v for k, v in (rewards or {}).items() if k in keys},
                        "negative_rewards": {k: v for k, v in (negative or {}).items() if k in keys},
                        "seed": exp.seed if seed is None else seed, "batch_size": 128})
    return render(pipe, prompts, [(i, 0) for i in range(len(prompts))], settings)


def evaluate_samples(images_u8: np.ndarray, metadata: list[dict]) -> list[dict]:
    """Per image: {"tag", "prompt", "correct" (ShapesEval), "colour_ok" (every colour clause whose objects
    were found has the asked colour; None without such a clause), "class_ok" (single-object prompts: the
    asked class was detected; None otherwise), "reason"}."""
    from mirokit.evaluate.geneval_rules import check_clauses, evaluate_detections, filter_detections
    from mirokit.world.detector import ShapesDetector
    from mirokit.world.rewards import index_detections

    out = []
    for dets, meta in zip(ShapesDetector().detect_batch(images_u8), metadata):
        correct, reason = evaluate_detections(dets, meta)
        colour_ok = None
        coloured = [req for req in meta.get("include", []) if "color" in req]
        if coloured:
            kept = filter_detections(index_detections(dets), meta["tag"])
            found = [req for req in coloured if len(kept.get(req["class"], [])) >= req["count"]]
            if found:
                verdicts = check_clauses(kept, {**meta, "include": [{k: v for k, v in r.items() if k != "position"}
                                                                    for r in found]})
                colour_ok = all(ok for ok, _ in verdicts)
        class_ok = (any(d.cls == meta["include"][0]["class"] for d in dets) if meta["tag"] == "single_object"
                    else None)
        out.append({"tag": meta["tag"], "prompt": meta["prompt"], "correct": bool(correct), "colour_ok": colour_ok,
                    "class_ok": class_ok, "reason": reason})
    return out


def column(records: list[dict], key: str) -> np.ndarray:
    """(N,) float64 of one field of evaluate_samples records (None -> NaN)."""
    return np.asarray([np.nan if r[key] is None else float(r[key]) for r in records], dtype=np.float64)


def summarize_samples(records: list[dict], prompt_ids: list[int]) -> dict:
    """ShapesEval overall (mean of per-tag accuracies, stratified interval clustered by prompt), per-tag
    accuracy, colour fidelity and single-object class accuracy (t-intervals over prompts) of
    evaluate_samples records."""
    from mirokit.evaluate.stats import mean_ci, stratified_mean_ci

    tags = [r["tag"] for r in records]
    correct = column(records, "correct")
    per_tag = {t: float(np.mean([c for c, g in zip(correct, tags) if g == t])) for t in dict.fromkeys(tags)}
    return {"shapes_eval": stratified_mean_ci(correct, tags, prompt_ids), "per_tag": per_tag,
            "colour_fidelity": mean_ci(column(records, "colour_ok"), prompt_ids),
            "single_object_class": mean_ci(column(records, "class_ok"), prompt_ids)}
