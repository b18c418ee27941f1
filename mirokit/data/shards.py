"""Encoded training shards: the format `mirokit encode` writes and the `shards` data source reads.

Each sample of a shard is three members (safetensors and JSON: no pickle):
    {key}.json               {"key", "captions": [{"name", "text", "scores": {reward: raw score}}, ...], ...}
    {key}.latent.safetensors "mean", "std": (C, h, w) the VAE latent distribution of the image
    {key}.text.safetensors   "caption_0", "caption_1", ...: (L_i, D) text-encoder states of each caption's
                             valid tokens (trimmed to its mask)
and the folder holds `encoding.json` (what encoded it: VAE, text encoder, shapes, counts),
`uncond_text.safetensors` (the text encoder's states of "": the empty prompt of classifier-free
guidance) and `mirokit-index.json` (samples per shard; written on first read).

The reader is random access (an index of member offsets per shard, read with one seek per member),
so it runs on the core DataLoader with the (seed, step) order: exact resume, any number of ranks
and workers. Raw scores are calibrated on read with `data.calibration`. A sample that cannot be read
is logged, replaced by the next readable one (deterministically) and counted in `Batch.skipped`.

Shards given as URLs (a folder URL ending in "/", or a brace pattern of .tar URLs; mirokit.urls) are downloaded
once into a local cache folder (`data.cache_dir`, default ~/.cache/mirokit/shards/<hash of the URL>/; a complete
file there is never fetched again) and read from there: random access by index needs local files. A folder URL
brings its encoding.json, uncond_text.safetensors and latent_stats.json along.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor
from torch.utils.data import Dataset

from mirokit.atomic import process_owner, write_json_atomic
from mirokit.data.batch import DataError
from mirokit.data.calibration import Calibration
from mirokit.data.caption_mix import CaptionMixConfig
from mirokit.data.source import DATA_SOURCES, UNCOND_TEXT_FILE, DataConfig, DatasetInfo, Sample
from mirokit.dtypes import dtype_named
from mirokit.tars import index_members, shard_list, shard_name
from mirokit.urls import DownloadError, fetch, is_url

log = logging.getLogger(__name__)

ENCODING_FILE = "encoding.json"
INDEX_FILE = "mirokit-index.json"


def sample_members(meta: dict, mean: Tensor, std: Tensor, texts: list[Tensor], dtype: str = "fp16") -> dict[str, bytes]:
    """The members of one encoded sample: meta (with its "captions" list), latent moments (C, h, w) and one
    (L_i, D) text tensor per caption, stored in `dtype`."""
    if len(texts) != len(meta["captions"]):
        raise ValueError(f"{len(meta['captions'])} captions but {len(texts)} text embeddings")
    store = dtype_named(dtype, "encode dtype")
    latent = {"mean": mean.to(store).contiguous().cpu(), "std": std.to(store).contiguous().cpu()}
    text = {f"caption_{i}": t.to(store).contiguous().cpu() for i, t in enumerate(texts)}
    return {"json": json.dumps(meta).encode(), "latent.safetensors": save_tensors(latent),
            "text.safetensors": save_tensors(text)}


def decode_members(parts: dict[str, bytes], where: str) -> tuple[dict, Tensor, list[Tensor]]:
    """(meta, moments (2C, h, w) float32, texts [(L_i, D) float32]) of one sample; DataError naming it."""
    missing = [m for m in ("json", "latent.safetensors", "text.safetensors") if m not in parts]
    if missing:
        raise DataError(f"{where}: missing member(s) {', '.join(missing)}")
    try:
        meta = json.loads(parts["json"])
        latent = load_tensors(parts["latent.safetensors"])
        text = load_tensors(parts["text.safetensors"])
        moments = torch.cat([latent["mean"], latent["std"]], dim=0).float()
        texts = [text[f"caption_{i}"].float() for i in range(len(meta["captions"]))]
    except Exception as err:  # JSON, safetensors and key errors alike name the sample
        raise DataError(f"{where}: unreadable sample ({type(err).__name__}: {str(err)[:120]})") from None
    if not torch.isfinite(moments).all():
        raise DataError(f"{where}: latent moments are not finite")
    return meta, moments, texts


class _OpenShard:
    """A shard's member table and open file handle (one per process: DataLoader workers open their own)."""

    def __init__(self, path: Path):
        self.path = path
        self.members = index_members(path)
        self.file = open(path, "rb")  # closed by the LRU cache

    def read(self, j: int) -> tuple[str, dict[str, bytes]]:
        key, table = self.members[j]
        parts = {}
        for ext, (offset, size) in table.items():
            self.file.seek(offset)
            parts[ext] = self.file.read(size)
        return key, parts


def load_index(paths: list[Path], folder: Path | None) -> list[int]:
    """Samples per shard, from `folder/mirokit-index.json` when it matches the shards (same paths, sizes and
    modification times), else counted from the tar headers (and written there if the folder is writable)."""
    stamp = [[str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime)] for p in paths]
    index_file = folder / INDEX_FILE if folder is not None else None
    if index_file is not None and index_file.is_file():
        try:
            cached = json.loads(index_file.read_text())
            if cached.get("shards") == stamp:
                return [int(n) for n in cached["samples"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    counts = [len(index_members(p)) for p in paths]
    if index_file is not None:
        try:
            # the ranks of a job may all count at once: a temporary each
            write_json_atomic(index_file, {"shards": stamp, "samples": counts}, process_owner(), indent=None)
        except OSError:
            pass  # a read-only dataset folder: count again next time
    return counts


FOLDER_FILES = (ENCODING_FILE, UNCOND_TEXT_FILE, "latent_stats.json")
"""what a folder URL brings along into the cache besides its shards (each optional)"""


def cache_folder(spec: str, cache_dir: str | Path | None = None) -> Path:
    """The local folder the shards of the URL `spec` are downloaded to: CACHE/<16 hex digits of its SHA-256>, CACHE
    being `cache_dir`, else $XDG_CACHE_HOME/mirokit/shards (~/.cache/mirokit/shards)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirokit" / "shards"
    root = Path(cache_dir) if cache_dir else default
    return root.expanduser() / hashlib.sha256(spec.encode()).hexdigest()[:16]


def download_shards(spec: str, cache_dir: str | Path | None = None) -> tuple[list[Path], Path, bool]:
    """Fetch the shards a URL names (a folder URL ending in "/" with its FOLDER_FILES, or a brace pattern) into
    `cache_folder(spec, cache_dir)`, each once (retried; mirokit.urls.fetch). Returns (local shard paths in the
    URL order, the cache folder, whether it is a whole folder whose metadata came along); a download that fails
    is a DataError naming the URL."""
    urls = shard_list(spec)
    folder = cache_folder(spec, cache_dir)
    names = [shard_name(u) for u in urls]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise DataError(f"{spec}: two shards are named {twice!r}; the cache keeps shards by file name")
    whole = spec.endswith("/") and not spec.startswith("pipe:")
    todo = sum(not (folder / n).is_file() for n in names)
    if todo:
        log.warning("downloading %d of %d shard(s) of %s into %s (training reads shards by index: local files)",
                    todo, len(names), spec, folder)
    try:
        for name in FOLDER_FILES if whole else ():
            fetch(spec + name, folder / name, missing_ok=True)
        paths = [fetch(u, folder / n) for u, n in zip(urls, names)]
    except DownloadError as err:
        raise DataError(f"{err.line()}; finished downloads stay in {folder}") from None
    return paths, folder, whole


class EncodedShards(Dataset):
    """Random-access dataset over encoded shards; `self[i]` is a `Sample` with latent moments (2C, h, w),
    a caption, its calibrated scores and its (L, D) text states.

    Args:
        spec: folder of shards (with encoding.json) or a (brace) pattern of .tar files; or such a URL (a folder
            URL ends in "/"), downloaded first (`download_shards`).
        calibration: maps raw scores to [0, 1]; None means the stored scores are already calibrated.
        caption_mix, caption_weights, caption_rewards: which caption `draw` trains on and with which scores
            (mirokit.data.caption_mix).
        max_skips: unreadable samples tried in a row before giving up with an error.
        open_shards: shards kept open per process.
        cache_dir: where URL shards are downloaded (`cache_folder`).
    """

    def __init__(self, spec: str | Path, *, calibration: Calibration | None = None, caption_mix: float = 0.0,
                 caption_weights: dict[str, float] | None = None, caption_rewards: str = "own",
                 max_skips: int = 16, open_shards: int = 8, cache_dir: str | Path | None = None):
        self.mix = CaptionMixConfig(caption_mix=caption_mix, caption_weights=caption_weights,
                                    caption_rewards=caption_rewards)
        if is_url(str(spec)):
            self.paths, cache, whole = download_shards(str(spec), cache_dir)
            folder, index_folder = (cache if whole else None), cache
        else:
            self.paths = shard_list(spec)
            folder = index_folder = Path(spec) if Path(spec).is_dir() else None
        self.counts = load_index(self.paths, index_folder)
        self.starts = np.cumsum([0, *self.counts])
        if self.starts[-1] == 0:
            raise DataError(f"{spec}: the shards hold no samples")
        self.calibration = calibration
        self.max_skips = max_skips
        self.open_shards = open_shards
        self.encoding = (json.loads((folder / ENCODING_FILE).read_text())
                         if folder and (folder / ENCODING_FILE).is_file() else {})
        uncond = DatasetInfo.load(folder).uncond_text if folder is not None else None
        keys = calibration.keys if calibration is not None else self.encoding.get("reward_keys", [])
        self.info = DatasetInfo(reward_keys=tuple(keys), calibration=calibration, uncond_text=uncond)
        self._open: OrderedDict[int, _OpenShard] = OrderedDict()

    def __len__(self) -> int:
        """Number of samples over all shards."""
        return int(self.starts[-1])

    def __getstate__(self):  # DataLoader workers reopen their own files
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()
        return state

    def _shard(self, s: int) -> _OpenShard:
        shard = self._open.get(s)
        if shard is None:
            shard = self._open[s] = _OpenShard(self.paths[s])
            if len(self._open) > self.open_shards:
                self._open.popitem(last=False)[1].file.close()
        self._open.move_to_end(s)
        return shard

    def _read(self, index: int) -> tuple[dict, Tensor, list[Tensor]]:
        s = int(np.searchsorted(self.starts, index, side="right") - 1)
        shard = self._shard(s)
        key, parts = shard.read(index - int(self.starts[s]))
        return decode_members(parts, f"{self.paths[s].name}:{key}")

    def _scores(self, raw: dict) -> dict[str, float]:
        values = {k: (math.nan if v is None else float(v)) for k, v in raw.items()
                  if isinstance(v, (int, float)) or v is None}
        if self.calibration is None:
            return values
        return {k: float(self.calibration.apply(k, np.asarray([values.get(k, math.nan)]))[0])
                for k in self.calibration.keys}

    def draw(self, index: int, generator: torch.Generator | None = None) -> Sample:
        """Sample `index` (or the next readable one); with a generator, the caption chosen by the caption mix
        (mirokit.data.caption_mix), with its own scores or the original's."""
        for skipped in range(self.max_skips + 1):
            i = (index + skipped) % len(self)
            try:
                meta, moments, texts = self._read(i)
            except (DataError, OSError) as err:
                log.warning("skipping %s", err)
                last = err
                continue
            captions = meta["captions"]
            choice = self.mix.choose([c.get("name", str(k)) for k, c in enumerate(captions)], generator)
            caption = captions[choice]
            scored = caption if self.mix.own_rewards else captions[0]
            return Sample(moments, caption["text"], self._scores(scored.get("scores", {})), texts[choice], skipped)
        raise DataError(f"{self.max_skips + 1} unreadable samples in a row from index {index}; last: {last}")

    def __getitem__(self, index: int) -> Sample:
        """Sample `index` with its first caption."""
        return self.draw(index)


@dataclass(kw_only=True)
class ShardsDataConfig(CaptionMixConfig, DataConfig):
    """Encoded shards written by `mirokit encode` (latent moments, text states, raw scores)."""

    path: str
    """folder of encoded shards (or a brace pattern of .tar files); a URL (http(s), s3, gs, hf, pipe:; a folder URL
    ends in /) is downloaded to cache_dir first"""
    cache_dir: str | None = None
    """where shards given as URLs are downloaded (random access needs local files); none: ~/.cache/mirokit/shards"""
    calibration: str | None = None
    """calibration JSON (`mirokit calibrate fit`) applied to the raw scores; none: scores are already in [0, 1]"""
    max_skips: int = 16
    """unreadable samples skipped in a row before the run stops"""


@DATA_SOURCES.register("shards", config=ShardsDataConfig, description="encoded shards from `mirokit encode`")
def shards_source(cfg: ShardsDataConfig, *, image_size: int, channels: int) -> EncodedShards:
    """Encoded shards whose latent moments must be (channels, image_size, image_size)."""
    calibration = Calibration.load(cfg.calibration) if cfg.calibration else None
    dataset = EncodedShards(cfg.path, calibration=calibration, max_skips=cfg.max_skips, cache_dir=cfg.cache_dir,
                            **vars(CaptionMixConfig.of(cfg)))
    shape = dataset.encoding.get("moments_shape")
    if shape is not None and tuple(shape) != (channels, image_size, image_size):
        raise ValueError(f"{cfg.path} holds latent moments of shape {tuple(shape)}; this run expects "
                         f"{(channels, image_size, image_size)} (model.image_channels/image_size, image_space)")
    return dataset
