"""The training-dataset contract, the data-source registry and `build_dataset`.

A data source is a function registered under a kind, with its own config dataclass:

    @dataclass(kw_only=True)
    class MyDataConfig(DataConfig):
        path: str = ""
        \"\"\"where the data is\"\"\"

    @DATA_SOURCES.register("mine", config=MyDataConfig, description="...")
    def my_source(cfg: MyDataConfig, *, image_size: int, channels: int) -> TrainDataset: ...

selected with `data: {kind: mine, path: ...}`. It returns a map-style torch Dataset whose items are
`Sample`s and which declares `info: DatasetInfo`. A new source is one module in `mirokit/data/`
(or a plugin module, see `mirokit.registry`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from torch import Tensor
from torch.utils.data import Dataset

from mirokit.config import KindConfig
from mirokit.data.batch import DataError
from mirokit.data.calibration import Calibration
from mirokit.registry import Registry

DATA_SOURCES: Registry = Registry("data source", "mirokit.data")
"""kind -> builder, called as `builder(cfg, image_size=S, channels=C)`."""


class Sample(NamedTuple):
    """One training item, as a dataset's `__getitem__` returns it."""

    image: Tensor
    """(C, H, W) float32: pixels in [-1, 1], or whatever the run's image space takes (e.g. latents)"""
    caption: str
    """the caption"""
    scores: dict[str, float]
    """{reward key: calibrated value in [0, 1], or NaN = missing}"""
    text: Tensor | None = None
    """(L, D) precomputed text-encoder states of the caption's valid tokens (None: encode the caption)"""
    skipped: int = 0
    """unreadable samples this one replaces (counted in the run's metrics)"""


CALIBRATION_FILE = "calibration.json"
"""the reward calibration of a dataset, beside its data and in every model and checkpoint trained on it"""
UNCOND_TEXT_FILE = "uncond_text.safetensors"
"""the text encoder's states of the empty prompt ({"embedding": (L, D)}), same places"""


@dataclass(frozen=True, eq=False)
class DatasetInfo:
    """What a training dataset declares about itself; the one owner of the dataset-side files
    (CALIBRATION_FILE, UNCOND_TEXT_FILE) wherever they are written: encoded data, checkpoints, model folders."""

    reward_keys: tuple[str, ...] = ()
    """reward keys its samples carry"""
    calibration: Calibration | None = None
    """how its raw reward scores were mapped to [0, 1]; saved as calibration.json with the model"""
    uncond_text: Tensor | None = None
    """(L, D) text states of the empty prompt, for datasets with precomputed text (caption dropout uses it)"""

    def save(self, directory: str | Path) -> None:
        """Write the files of what this info holds (calibration.json, uncond_text.safetensors) into `directory`."""
        from mirokit.pretrained import save_weights

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.calibration is not None:
            self.calibration.save(directory / CALIBRATION_FILE)
        if self.uncond_text is not None:
            save_weights({"embedding": self.uncond_text.float()}, directory / UNCOND_TEXT_FILE)

    @classmethod
    def load(cls, directory: str | Path, reward_keys: tuple[str, ...] = ()) -> DatasetInfo:
        """The info saved in `directory` by `save` (each file optional); unreadable files are one-line errors."""
        from mirokit.pretrained import read_weights

        directory = Path(directory)
        calibration = uncond = None
        if (directory / CALIBRATION_FILE).is_file():
            calibration = Calibration.load(directory / CALIBRATION_FILE)
        if (directory / UNCOND_TEXT_FILE).is_file():
            states = read_weights(directory / UNCOND_TEXT_FILE)
            if "embedding" not in states:
                raise DataError(f"{directory / UNCOND_TEXT_FILE} holds no tensor named 'embedding'")
            uncond = states["embedding"].float()
        return cls(reward_keys=tuple(reward_keys), calibration=calibration, uncond_text=uncond)


@runtime_checkable
class TrainDataset(Protocol):
    """A map-style dataset of `Sample`s that declares its `DatasetInfo`.

    A dataset may also define `draw(index, generator) -> Sample` to use randomness (e.g. pick one of
    several captions); the loader then calls it with a generator seeded by (seed, stream position),
    so the choice is the same with any number of ranks and workers and after a resume.
    """

    info: DatasetInfo

    def __len__(self) -> int:
        """Number of samples N."""
        ...

    def __getitem__(self, index: int) -> Sample:
        """Sample `index` (0 <= index < N)."""
        ...


@dataclass(kw_only=True)
class DataConfig(KindConfig):
    """Where training samples come from; `kind` selects the registered source (toy, jsonl, ...)."""

    registry: ClassVar[Any] = DATA_SOURCES

    subset: str | None = None
    """optional JSON file with a list of sample indices to train on (e.g. a top-25% filtered baseline)"""


def check_dataset(dataset: Any, where: str = "dataset") -> TrainDataset:
    """One-line TypeError unless `dataset` has `__len__`, `__getitem__` and `info: DatasetInfo`."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"{where} ({type(dataset).__name__}) is not a map-style dataset (__len__, __getitem__)")
    if not isinstance(getattr(dataset, "info", None), DatasetInfo):
        raise TypeError(f"{where} ({type(dataset).__name__}) must declare `info: mirokit.data.DatasetInfo`")
    return dataset


def build_dataset(cfg: DataConfig, *, image_size: int, channels: int) -> TrainDataset:
    """Instantiate the dataset configured by `cfg` (restricted to `cfg.subset` if given)."""
    dataset = check_dataset(DATA_SOURCES.build(cfg, image_size=image_size, channels=channels),
                            f"data source {cfg.kind!r}")
    if cfg.subset is None:
        return dataset
    path = Path(cfg.subset)
    if not path.is_file():
        raise FileNotFoundError(f"subset file not found: {path}")
    try:
        indices = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(indices, list):
        raise DataError(f"{path}: expected a JSON list of sample indices")
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(dataset)]
    if bad:
        raise DataError(f"{path}: index {bad[0]!r} is not a sample index of a {len(dataset)}-sample dataset")
    return SubsetDataset(dataset, indices)


class SubsetDataset(Dataset):
    """A view of `base` restricted to `indices` (e.g. the top-25% filtered baseline); same info as `base`."""

    def __init__(self, base: TrainDataset, indices):
        self.base = base
        self.indices = [int(i) for i in indices]
        self.info = base.info
        if not self.indices:
            raise DataError("subset is empty")

    def __len__(self) -> int:
        """Number of selected samples."""
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        """Sample `indices[i]` of the base dataset."""
        return self.base[self.indices[i]]
