"""`mirokit encode`: scored shards -> encoded shards (VAE latent moments + text-encoder states + raw scores).

Each input tar (as `mirokit score --enrich` writes them: an image, `.txt` caption, `.json` with the raw
scores; optional named captions `{key}.NAME.txt` with scores `NAME_<reward>` in the .json) becomes one
output tar of the same name in the format of `mirokit.data.shards`. Units are split over
`--shard-index/--num-shards` and torchrun ranks; a finished unit is never redone (written to a
temporary name, then renamed), so a killed job resumes. Bad samples (unreadable image, missing
caption) are left out and counted by kind in the unit's report and the manifest.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mirokit.data.batch import DataError
from mirokit.data.jsonl import load_image
from mirokit.data.shards import ENCODING_FILE, UNCOND_FILE, sample_members
from mirokit.encoders.text_hf import HFTextEncoder, HFTextEncoderConfig
from mirokit.encoders.vae import LatentStats, VAESpace, VAESpaceConfig
from mirokit.tars import ShardWriter, caption_of, iter_samples, shard_list

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass(kw_only=True)
class EncodeJobConfig:
    """What to encode and how."""

    inputs: list[str]
    """scored tar shards (paths, brace patterns or folders)"""
    out_dir: str
    """folder of the encoded shards"""
    rewards: list[str]
    """score fields of the .json to keep (raw; calibrate them with `mirokit calibrate`)"""
    vae: str = "stabilityai/sdxl-vae"
    """VAE hub id or folder"""
    text_encoder: str = "google/flan-t5-xl"
    """T5 hub id or folder"""
    max_length: int = 128
    """text tokens per caption before trimming to the valid ones"""
    captions: list[str] = field(default_factory=list)
    """names of extra captions ({key}.NAME.txt or the .json's NAME_caption), e.g. synthetic"""
    image_size: int = 256
    """images are resized (shorter side) and centre-cropped to this"""
    dtype: str = "float16"
    """storage dtype of latents and text states: float16 | bfloat16 | float32"""
    batch_size: int = 32
    """images per VAE / T5 call"""
    device: str = "cpu"
    """where the VAE and T5 run (bfloat16 weights on CUDA)"""
    shard_index: int = 0
    num_shards: int = 1
    stats: bool = True
    """also estimate the latents' per-channel mean / std (latent_stats.json, for normalisation: stats)"""
    progress: bool = True


class Encoders:
    """The frozen VAE and text encoder of a job, on its device."""

    def __init__(self, cfg: EncodeJobConfig):
        dtype = "bfloat16" if cfg.device.startswith("cuda") else "float32"
        self.vae = VAESpace(VAESpaceConfig(name_or_path=cfg.vae, dtype=dtype, batch_size=cfg.batch_size,
                                           sample=False)).to(cfg.device)
        self.text = HFTextEncoder(HFTextEncoderConfig(name_or_path=cfg.text_encoder, max_length=cfg.max_length,
                                                      dtype=dtype)).to(cfg.device)

    def texts(self, captions: list[str]) -> list[torch.Tensor]:
        """B captions -> B (L_i, D) float32 states of the valid tokens."""
        states, mask = self.text(captions)
        return [s[m].float().cpu() for s, m in zip(states, mask)]


def _read_sample(key: str, parts: dict[str, bytes], error: str, cfg: EncodeJobConfig):
    """(pixels (3, S, S), meta with "captions") of one input sample, or (None, the reason it is left out)."""
    if error:
        return None, error.split(":")[0]
    image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
    if image is None:
        return None, "no image member"
    try:
        meta = json.loads(parts["json"]) if "json" in parts else {}
    except ValueError:
        return None, "malformed json member"
    captions = []
    for name in ["", *cfg.captions]:
        text = caption_of(parts, name)
        if text is None:
            if not name:
                return None, "missing caption"
            continue  # this sample has no such caption
        prefix = f"{name}_" if name else ""
        scores = {r: _score(meta.get(prefix + r)) for r in cfg.rewards}
        captions.append({"name": name or "original", "text": text, "scores": scores})
    try:
        pixels = load_image(io.BytesIO(image), image_size=cfg.image_size, name=key)
    except DataError:
        return None, "corrupt image"
    return pixels, {"key": key, "captions": captions}


def _score(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def encode_unit(path: Path, out: Path, encoders: Encoders, cfg: EncodeJobConfig, bar) -> dict:
    """Encode one input tar into `out` (atomically); returns its report."""
    writer = ShardWriter(out)
    report = {"samples": 0, "left_out": {}}
    stats = LatentStats()
    pending: list[tuple[torch.Tensor, dict]] = []

    def flush() -> None:
        pixels = torch.stack([p for p, _ in pending])
        moments = encoders.vae.encode_moments(pixels).cpu()
        stats.update(moments)
        report["moments_shape"] = list(moments.shape[1:])
        states = encoders.texts([c["text"] for _, meta in pending for c in meta["captions"]])
        first = 0
        for (_, meta), m in zip(pending, moments):
            texts = states[first:first + len(meta["captions"])]
            first += len(meta["captions"])
            mean, std = m.chunk(2, dim=0)
            writer.write(meta["key"], sample_members(meta, mean, std, texts, cfg.dtype))
        report["samples"] += len(pending)
        bar.update(len(pending))
        pending.clear()

    try:
        for key, parts, error in iter_samples(path):
            pixels, meta = _read_sample(key, parts, error, cfg)
            if pixels is None:
                report["left_out"][meta] = report["left_out"].get(meta, 0) + 1
                continue
            pending.append((pixels, meta))
            if len(pending) == cfg.batch_size:
                flush()
        if pending:
            flush()
    except BaseException:
        writer.abort()
        raise
    if stats.count:
        report["latent_sums"] = stats.sums()
    writer.close()
    return report


def run_encode_job(cfg: EncodeJobConfig, is_main: bool = True) -> dict:
    """Encode this process's share of the inputs; returns (and writes) the manifest."""
    if not cfg.rewards:
        raise ValueError("give the score fields to keep: --reward KEY (repeatable)")
    if not 0 <= cfg.shard_index < cfg.num_shards:
        raise ValueError(f"--shard-index {cfg.shard_index} must be in [0, {cfg.num_shards})")
    paths = [p for spec in cfg.inputs for p in shard_list(spec)]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError("two input shards have the same file name; encoded shards are named after them")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoders = Encoders(cfg)
    if is_main:
        empty = encoders.texts([""])[0]
        from safetensors.torch import save_file

        save_file({"embedding": empty.contiguous()}, str(out / UNCOND_FILE))
    mine = [p for i, p in enumerate(paths) if i % cfg.num_shards == cfg.shard_index]
    todo = [p for p in mine if not (out / p.name).is_file()]
    start, bar = time.perf_counter(), tqdm(desc="encoding", unit="img", disable=not cfg.progress, dynamic_ncols=True)
    for path in todo:
        report = encode_unit(path, out / path.name, encoders, cfg, bar)
        _write_json(out / f".{path.stem}.report.json", report)
    bar.close()
    reports = {p.name: json.loads((out / f".{p.stem}.report.json").read_text()) for p in mine
               if (out / f".{p.stem}.report.json").is_file()}
    left_out: dict[str, int] = {}
    for r in reports.values():
        for kind, n in r["left_out"].items():
            left_out[kind] = left_out.get(kind, 0) + n
    manifest = {"config": asdict(cfg), "units": [p.name for p in mine], "skipped_done": len(mine) - len(todo),
                "samples": sum(r["samples"] for r in reports.values()), "left_out": left_out,
                "seconds_this_run": time.perf_counter() - start}
    _write_json(out / f"manifest.{cfg.shard_index:03d}-of-{cfg.num_shards:03d}.json", manifest)
    return manifest


def finish_encoding(cfg: EncodeJobConfig, paths: list[Path]) -> dict:
    """After every part is done (one process): encoding.json, and latent_stats.json from all units' sums."""
    out = Path(cfg.out_dir)
    reports = [json.loads((out / f".{p.stem}.report.json").read_text()) for p in paths
               if (out / f".{p.stem}.report.json").is_file()]
    stats = LatentStats()
    for r in reports:
        if "latent_sums" in r:
            stats.add_sums(r["latent_sums"])
    if stats.count and cfg.stats:
        stats.save(out / "latent_stats.json")
    shape = next((r["moments_shape"] for r in reports if "moments_shape" in r), None)
    encoding = {"vae": cfg.vae, "text_encoder": cfg.text_encoder, "max_length": cfg.max_length, "reward_keys": cfg.rewards, "captions": ["original", *cfg.captions],
                "image_size": cfg.image_size, "dtype": cfg.dtype, "moments_shape": shape,
                "samples": sum(r["samples"] for r in reports), "shards": len(reports)}
    _write_json(out / ENCODING_FILE, encoding)
    return encoding


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)
