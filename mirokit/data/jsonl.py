"""Image–caption–scores datasets described by a JSON-lines file.

Each line: `{"image": "rel/or/abs/path.png", "caption": "...", "scores": {"clip_score": 0.7}}`.
Every line is validated when the dataset is built; bad lines are skipped, counted in
`dataset.skipped` and reported once with a warning, so nothing is lost silently.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from mirokit.config import shown
from mirokit.data.batch import DataError
from mirokit.data.caption_mix import CaptionMixConfig
from mirokit.data.source import DATA_SOURCES, DataConfig, DatasetInfo, Sample
from mirokit.images import open_image
from mirokit.tars import utf8_text

# Errors PIL raises for unreadable/corrupt files (SyntaxError and struct errors come from some
# decoders on truncated headers).
_IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def load_image(path, *, image_size: int, channels: int = 3, name: str | None = None) -> Tensor:
    """Read an image (a path or a file-like object of its bytes) into a (C, image_size, image_size)
    float32 tensor in [-1, 1].

    The image is converted to RGB (C=3) or L (C=1), transparent pixels are composited on white,
    the shorter side is resized to `image_size` (bicubic) and the centre is cropped.
    Raises `DataError` naming the file (or `name`) if it cannot be decoded.
    """
    try:
        im = open_image(path, "RGB" if channels == 3 else "L")
    except _IMAGE_ERRORS as err:
        raise DataError(f"cannot read image {name or path}: {_first_line(err)}") from None
    im = _resize_center_crop(im, image_size)
    array = np.asarray(im, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous().div_(127.5).sub_(1.0)


def _resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    width, height = im.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        im = im.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return im.crop((left, top, left + size, top + size))


def _parse_scores(raw: object) -> tuple[dict[str, float] | None, str]:
    """Scores dict -> ({key: float or NaN}, "") or (None, reason)."""
    if raw is None:
        return {}, ""
    if not isinstance(raw, dict):
        return None, f"scores is not an object ({type(raw).__name__})"
    scores = {}
    for key, value in raw.items():
        if value is None:
            scores[key] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, Real):
            return None, f"score {key!r} is not a number ({value!r})"
        try:
            number = float(value)
        except OverflowError:  # a 400-digit integer
            return None, f"score {key!r} is outside [0, 1] ({value!r:.20}...)"
        if not math.isnan(number) and not 0.0 <= number <= 1.0:
            return None, f"score {key!r}={number} outside [0, 1]"
        scores[key] = number
    return scores, ""


class JsonlImageDataset(Dataset):
    """Dataset over a JSONL file of `{"image", "caption", "scores"}` records.

    `self[i]` returns `(image (C, image_size, image_size) float32 in [-1, 1], caption, scores)`
    where `scores` maps reward keys to floats in [0, 1] or NaN (missing); feed a list of these to
    `mirokit.data.collate`. Image paths are relative to the JSONL's folder, or to `root` if given.
    `skipped` lists one-line reasons (`"file.jsonl:3: missing caption"`) for rejected lines.
    With `verify_images=True` every image is decoded at construction and corrupt ones are skipped
    too; otherwise a corrupt file raises `DataError` naming it when it is first read.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        image_size: int,
        channels: int = 3,
        root: str | Path | None = None,
        verify_images: bool = False,
        caption_mix: float = 0.0,
        caption_weights: dict[str, float] | None = None,
        caption_rewards: str = "own",
    ) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise DataError(f"dataset file not found: {path}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
            raise DataError(f"{path.name}: image_size must be a positive int, got {image_size!r}")
        if channels not in (1, 3):
            raise DataError(f"{path.name}: channels must be 1 or 3, got {channels!r}")
        base = Path(root).expanduser() if root is not None else path.parent
        if not base.is_dir():
            raise DataError(f"image root folder not found: {base}")
        self.path = path
        self.root = base
        self.image_size = image_size
        self.channels = channels
        self.images: list[Path] = []
        self.captions: list[str] = []
        self.scores: list[dict[str, float]] = []
        self.others: list[list[tuple[str, str, dict[str, float] | None]]] = []
        """per record, its other captions: (name, text, their scores or None)"""
        self.mix = CaptionMixConfig(caption_mix=caption_mix, caption_weights=caption_weights,
                                    caption_rewards=caption_rewards)
        self.skipped: list[str] = []
        num_lines = 0
        try:
            lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028 may sit in a caption
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({_first_line(err)})") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue  # blank lines (e.g. a trailing newline) are not records
            num_lines += 1
            reason = self._add_line(line, verify_images)
            if reason:
                self.skipped.append(f"{path.name}:{number}: {reason}")
        if num_lines == 0:
            raise DataError(f"{path}: no records")
        if not self.images:
            raise DataError(f"{path}: every line is invalid; first: {self.skipped[0]}")
        if self.skipped:
            warnings.warn(
                f"{path.name}: skipped {len(self.skipped)} of {num_lines} lines; first: {self.skipped[0]}",
                stacklevel=2,
            )

    def _add_line(self, line: str, verify_images: bool) -> str:
        """Validate one JSONL line and append it; returns "" or the reason it was rejected."""
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            return f"malformed JSON ({err.msg} at column {err.colno})"
        except (ValueError, RecursionError) as err:  # a 5000-digit number; arrays nested thousands deep
            return f"malformed JSON ({_first_line(err)[:80]})"
        if not isinstance(record, dict):
            return f"not a JSON object ({type(record).__name__})"
        image = record.get("image")
        if not isinstance(image, str) or not image:
            return "missing image path" if image is None else "image path is not a non-empty string"
        caption = record.get("caption")
        if caption is None:
            return "missing caption"
        if not isinstance(caption, str):
            return f"caption is not a string ({type(caption).__name__})"
        if not utf8_text(caption):
            return "caption is not UTF-8 (a lone surrogate escape)"
        scores, reason = _parse_scores(record.get("scores"))
        if scores is None:
            return reason
        others = []
        for field_name, text in record.items():
            name = field_name[:-len("_caption")]
            if not field_name.endswith("_caption") or not name or not isinstance(text, str) or not text.strip():
                continue
            if not utf8_text(text):
                return f"{field_name} is not UTF-8 (a lone surrogate escape)"
            own = None
            if f"{name}_scores" in record:
                own, reason = _parse_scores(record[f"{name}_scores"])
                if own is None:
                    return f"{name}_scores: {reason}"
            others.append((name, text, own))
        image_path = Path(image).expanduser()
        if not image_path.is_absolute():
            image_path = self.root / image_path
        if not image_path.is_file():
            return f"image file not found: {shown(str(image_path))}"
        if verify_images:
            try:
                with Image.open(image_path) as im:
                    im.load()
            except _IMAGE_ERRORS as err:
                return f"corrupt image {shown(str(image_path))}: {_first_line(err)}"
        self.images.append(image_path)
        self.captions.append(caption)
        self.scores.append(scores)
        self.others.append(others)
        return ""

    def __len__(self) -> int:
        """Number of valid records."""
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        """Sample `index`: (image (C, H, W) float32 in [-1, 1], caption, {key: score or NaN})."""
        return self.draw(index)

    def draw(self, index: int, generator: torch.Generator | None = None) -> Sample:
        """Sample `index` with the caption the caption mix picks (mirokit.data.caption_mix): its own scores (a
        caption without `NAME_scores` has every reward missing) or, with caption_rewards original, the record's."""
        image = load_image(self.images[index], image_size=self.image_size, channels=self.channels)
        others = self.others[index]
        choice = self.mix.choose(["original", *(name for name, _, _ in others)], generator)
        if choice == 0:
            return Sample(image, self.captions[index], dict(self.scores[index]))
        _, text, own = others[choice - 1]
        if not self.mix.own_rewards:
            scores = dict(self.scores[index])
        else:
            scores = dict(own) if own is not None else {k: math.nan for k in self.scores[index]}
        return Sample(image, text, scores)

    @property
    def info(self) -> DatasetInfo:
        """The reward keys seen in the file (scores are taken as already calibrated)."""
        return DatasetInfo(reward_keys=tuple(self.reward_keys_seen))

    @property
    def reward_keys_seen(self) -> list[str]:
        """Sorted union of the score keys over all valid records."""
        keys = {key for scores in self.scores for key in scores}
        return sorted(keys | {key for others in self.others for _, _, own in others for key in (own or {})})


@dataclass(kw_only=True)
class JsonlDataConfig(CaptionMixConfig, DataConfig):
    """An image folder + a JSONL file of {"image": path, "caption": str, "scores": {key: float}} lines; other
    captions as "NAME_caption": str with their scores as "NAME_scores": {key: float} (e.g. synthetic_caption)."""

    path: str
    """the JSONL file"""
    root: str | None = None
    """folder that image paths are relative to (default: the JSONL's folder)"""
    verify_images: bool = False
    """open every image up front and skip (and report) corrupt ones"""


@DATA_SOURCES.register("jsonl", config=JsonlDataConfig, description="image folder + captions/scores JSONL")
def jsonl_source(cfg: JsonlDataConfig, *, image_size: int, channels: int) -> JsonlImageDataset:
    """The JSONL dataset at `image_size` with `channels` (1 or 3)."""
    return JsonlImageDataset(cfg.path, image_size=image_size, channels=channels, root=cfg.root,
                             verify_images=cfg.verify_images, **vars(CaptionMixConfig.of(cfg)))
