"""`mirokit encode`: scored shards -> encoded shards (VAE latent moments + text-encoder states + raw scores).

Each input tar (as `mirokit score --enrich` writes them: an image, `.txt` caption, `.json` with the raw
scores; optional named captions `{key}.NAME.txt` with scores `NAME_<reward>` in the .json) becomes one
output tar of the same name in the format of `mirokit.data.shards`. Units are split over
`--shard-index/--num-shards` and torchrun ranks; a finished unit is never redone (written to a
temporary name, then renamed), so a killed job resumes. Bad samples (unreadable image, missing
caption) are left out and counted by kind in the unit's report and the manifest.

Inputs may be URLs (http(s)://, s3://, gs://, hf://, pipe:CMD, brace patterns; mirokit.urls), read as streams
without a local copy; the output shard is local, named after the URL's file name. A shard whose download fails
(after retries) writes nothing, is counted `download failed` and listed in `failed_units`; the next run retries it.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mirokit.atomic import SOLE_WRITER, stale_temporaries, write_json_atomic
from mirokit.data.batch import DataError
from mirokit.data.jsonl import load_image
from mirokit.data.shards import ENCODING_FILE, sample_members
from mirokit.data.source import DatasetInfo
from mirokit.dtypes import dtype_name
from mirokit.encoders.pixel import build_image_space
from mirokit.encoders.text import build_text_encoder
from mirokit.encoders.vae import LatentStats
from mirokit.tars import DOWNLOAD_FAILED, CaptionError, ShardWriter, caption_of, iter_samples, shard_list, shard_name

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass(kw_only=True)
class EncodeJobConfig:
    """What to encode and how."""

    inputs: list[str]
    """scored tar shards (paths, URLs, brace patterns or folders)"""
    out_dir: str
    """folder of the encoded shards"""
    rewards: list[str]
    """score fields of the .json to keep (raw; calibrate them with `mirokit calibrate`)"""
    vae: str = "stabilityai/sdxl-vae"
    """VAE hub id or folder (for diffusers_vae: the pipeline's, whose vae/ is read)"""
    text_encoder: str = "google/flan-t5-xl"
    """text encoder hub id or folder (T5; for sana_text / sd3_text: the pipeline's)"""
    max_length: int = 128
    """text tokens per caption before trimming to the valid ones (sd3_text: T5's tokens)"""
    text_encoder_kind: str = "hf_t5"
    """the text encoder's kind: hf_t5 | sana_text (Sana's Gemma) | sd3_text (SD3's CLIP-L + CLIP-G + T5)"""
    vae_kind: str = "vae"
    """the image space's kind: vae (SDXL's AutoencoderKL) | diffusers_vae (a pipeline's own: SD3's VAE, Sana's
    DC-AE)"""
    captions: list[str] = field(default_factory=list)
    """names of extra captions ({key}.NAME.txt or the .json's NAME_caption), e.g. synthetic"""
    image_size: int = 256
    """images are resized (shorter side) and centre-cropped to this"""
    dtype: str = "fp16"
    """storage dtype of latents and text states: fp16 | bf16 | fp32"""
    batch_size: int = 32
    """images per VAE / T5 call"""
    num_workers: int = 2
    """processes that read and decode the input shards while the encoders run"""
    device: str = "cpu"
    """where the VAE and T5 run (bf16 weights on CUDA)"""
    shard_index: int = 0
    num_shards: int = 1
    stats: bool = True
    """also estimate the latents' per-channel mean / std (latent_stats.json, for normalisation: stats)"""
    progress: bool = True

    def __post_init__(self):
        self.dtype = dtype_name(self.dtype, "--dtype")


class Encoders:
    """The frozen VAE and text encoder of a job (of the kinds it names), on its device."""

    def __init__(self, cfg: EncodeJobConfig):
        dtype = "bf16" if cfg.device.startswith("cuda") else "fp32"
        self.vae = build_image_space({"kind": cfg.vae_kind, "name_or_path": cfg.vae, "dtype": dtype,
                                      "batch_size": cfg.batch_size, "sample": False}).to(cfg.device)
        if not hasattr(self.vae, "encode_moments"):
            raise ValueError(f"image space {cfg.vae_kind!r} has no latent moments to encode (use vae or diffusers_vae)")
        self.text = build_text_encoder({"kind": cfg.text_encoder_kind, "name_or_path": cfg.text_encoder,
                                        "max_length": cfg.max_length, "dtype": dtype}).to(cfg.device)
        if not hasattr(self.text, "load"):
            raise ValueError(f"text encoder {cfg.text_encoder_kind!r} is not a pretrained frozen encoder")

    def texts(self, captions: list[str]) -> list[torch.Tensor]:
        """B captions -> B (L_i, D) float32 states of the valid tokens."""
        states, mask = self.text(captions)
        states, mask = states.cpu(), mask.cpu()  # one copy to the host, then the valid tokens (no sync per caption)
        return [s[m].float() for s, m in zip(states, mask)]


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
        try:
            text = caption_of(parts, name)
        except CaptionError as err:
            return None, str(err)
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


def _decoded_units(units: list, cfg: EncodeJobConfig):
    """An IterableDataset of (unit index, [(pixels, meta) or (None, reason)] | None | str): worker w decodes units
    w, w+W, ... whole and in order, in batches of `cfg.batch_size` readable samples; None ends a unit, a str (the
    `download failed` line) ends a unit that could not be read."""
    import torch.utils.data as tud

    class _Units(tud.IterableDataset):
        def __iter__(self):
            info = tud.get_worker_info()
            wid, nw = (info.id, info.num_workers) if info else (0, 1)
            for u in range(wid, len(units), nw):
                batch, readable = [], 0
                for key, parts, error in iter_samples(units[u]):
                    if error.startswith(DOWNLOAD_FAILED):
                        yield u, error
                        break
                    item = _read_sample(key, parts, error, cfg)
                    batch.append(item)
                    readable += item[0] is not None
                    if readable == cfg.batch_size:
                        yield u, batch
                        batch, readable = [], 0
                else:
                    if batch:
                        yield u, batch
                    yield u, None

    return _Units()


class _UnitWriter:
    """The output of one unit: the shard being written, its latent statistics and its report."""

    def __init__(self, out: Path):
        self.writer = ShardWriter(out)
        self.stats = LatentStats()
        self.report: dict = {"samples": 0, "left_out": {}}

    def add(self, items: list, encoders: Encoders, dtype: str) -> int:
        """Encode and write a batch of decoded items; returns how many were written."""
        good = [(p, meta) for p, meta in items if p is not None]
        for p, reason in items:
            if p is None:
                self.report["left_out"][reason] = self.report["left_out"].get(reason, 0) + 1
        if not good:
            return 0
        moments = encoders.vae.encode_moments(torch.stack([p for p, _ in good])).cpu()
        self.stats.update(moments)
        self.report["moments_shape"] = list(moments.shape[1:])
        states = encoders.texts([c["text"] for _, meta in good for c in meta["captions"]])
        first = 0
        for (_, meta), m in zip(good, moments):
            texts = states[first:first + len(meta["captions"])]
            first += len(meta["captions"])
            mean, std = m.chunk(2, dim=0)
            self.writer.write(meta["key"], sample_members(meta, mean, std, texts, dtype))
        self.report["samples"] += len(good)
        return len(good)

    def close(self, report_path: Path) -> None:
        """Write the report (with the statistics' sums), then move the shard into place: a finished shard is
        what marks the unit done, so its report must exist first (a kill in between redoes the unit)."""
        if self.stats.count:
            self.report["latent_sums"] = self.stats.sums()
        write_json_atomic(report_path, self.report, SOLE_WRITER, indent=1, default=str)  # the unit is ours alone
        self.writer.close()


def run_encode_job(cfg: EncodeJobConfig, is_main: bool = True) -> dict:
    """Encode this process's share of the inputs; returns (and writes) the manifest."""
    if not cfg.rewards:
        raise ValueError("give the score fields to keep: --reward KEY (repeatable)")
    if not 0 <= cfg.shard_index < cfg.num_shards:
        raise ValueError(f"--shard-index {cfg.shard_index} must be in [0, {cfg.num_shards})")
    paths = [p for spec in cfg.inputs for p in shard_list(spec)]
    names = [shard_name(p) for p in paths]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"two input shards have the same file name {twice!r}; encoded shards are named after them "
                         "(encode them into separate --out folders)")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoders = Encoders(cfg)
    encoders.vae.vae, encoders.text.load()  # load both now: a missing model fails before any work
    if is_main:
        DatasetInfo(uncond_text=encoders.texts([""])[0]).save(out)
    mine = [Path(shard_name(p)) for i, p in enumerate(paths) if i % cfg.num_shards == cfg.shard_index]
    source = {shard_name(p): p for p in paths}  # output name -> local path or URL
    todo = [p for p in mine if not (out / p.name).is_file()]
    for path in todo:  # leftovers of a killed run (these shards are ours alone)
        for stale in [*stale_temporaries(out, f"{path.name}."), *stale_temporaries(out, f".{path.stem}.report.json.")]:
            stale.unlink()
    import torch.utils.data as tud

    loader = tud.DataLoader(_decoded_units([source[p.name] for p in todo], cfg), batch_size=None,
                            num_workers=min(cfg.num_workers, len(todo)), collate_fn=_identity)
    start, bar = time.perf_counter(), tqdm(desc="encoding", unit="img", disable=not cfg.progress, dynamic_ncols=True)
    writers: dict[int, _UnitWriter] = {}
    failed: dict[str, str] = {}
    try:
        for u, items in loader:
            if isinstance(items, str):  # the download failed: nothing written, retried by the next run
                failed[todo[u].name] = items
                continue
            writer = writers.get(u) or writers.setdefault(u, _UnitWriter(out / todo[u].name))
            if items is None:
                writers.pop(u).close(out / f".{todo[u].stem}.report.json")
                continue
            bar.update(writer.add(items, encoders, cfg.dtype))
    finally:
        for writer in writers.values():  # interrupted: nothing half-written stays
            writer.writer.abort()
        bar.close()
    reports = {p.name: json.loads((out / f".{p.stem}.report.json").read_text()) for p in mine
               if (out / f".{p.stem}.report.json").is_file()}
    left_out: dict[str, int] = {}
    for r in reports.values():
        for kind, n in r["left_out"].items():
            left_out[kind] = left_out.get(kind, 0) + n
    if failed:
        left_out[DOWNLOAD_FAILED] = len(failed)
    manifest = {"config": asdict(cfg), "units": [p.name for p in mine], "skipped_done": len(mine) - len(todo),
                "samples": sum(r["samples"] for r in reports.values()), "left_out": left_out,
                "failed_units": failed, "seconds_this_run": time.perf_counter() - start}
    write_json_atomic(out / f"manifest.{cfg.shard_index:03d}-of-{cfg.num_shards:03d}.json", manifest, SOLE_WRITER,
                      indent=1, default=str)
    return manifest


def finish_encoding(cfg: EncodeJobConfig, paths: list) -> dict:
    """After every part is done (one process): encoding.json, and latent_stats.json from all units' sums
    (`paths`: the input shards, local paths or URLs, as `mirokit.tars.shard_list` gives them)."""
    out = Path(cfg.out_dir)
    stems = [Path(shard_name(p)).stem for p in paths]
    reports = [json.loads((out / f".{stem}.report.json").read_text()) for stem in stems
               if (out / f".{stem}.report.json").is_file()]
    stats = LatentStats()
    for r in reports:
        if "latent_sums" in r:
            stats.add_sums(r["latent_sums"])
    if stats.count and cfg.stats:
        stats.save(out / "latent_stats.json")
    shape = next((r["moments_shape"] for r in reports if "moments_shape" in r), None)
    encoding = {"vae": cfg.vae, "vae_kind": cfg.vae_kind, "text_encoder": cfg.text_encoder,
                "text_encoder_kind": cfg.text_encoder_kind, "max_length": cfg.max_length,
                "reward_keys": cfg.rewards, "captions": ["original", *cfg.captions],
                "image_size": cfg.image_size, "dtype": cfg.dtype, "moments_shape": shape,
                "samples": sum(r["samples"] for r in reports), "shards": len(reports)}
    write_json_atomic(out / ENCODING_FILE, encoding, SOLE_WRITER, indent=1, default=str)
    return encoding


def encode_shards(cfg: EncodeJobConfig, is_main: bool = True) -> str | None:
    """Encode this process's share (run_encode_job), wait for every rank, then on the main process write
    encoding.json for all of them (finish_encoding) -> the line `mirokit encode` prints there (None elsewhere)."""
    from mirokit.distributed import barrier

    manifest = run_encode_job(cfg, is_main=is_main)
    barrier()
    if not is_main:
        return None
    encoding = finish_encoding(cfg, [p for spec in cfg.inputs for p in shard_list(spec)])
    left = manifest["left_out"]
    return (f"encoded {manifest['samples']} samples in {len(manifest['units'])} shard(s) of this job "
            f"({manifest['skipped_done']} already done); left out {sum(left.values())}"
            + (f" ({left})" if left else "") + f"; {encoding['samples']} samples in {cfg.out_dir} in all")


def _identity(item):
    return item
