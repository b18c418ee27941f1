"""Reward calibration: raw scores -> 64 quantile bins -> values on the 1/63 grid (docs/METHOD.md §2).

Per reward, the bin edges are quantiles of the dataset's *unique* raw scores; the first and last
edges are open (-inf, +inf) so every finite score lands in one of the 64 bins. A score in bin
b (1..64) maps to max(0, b - 1) / 63, i.e. a multiple of 1/63 in [0, 1]. A missing score (NaN)
stays NaN. The fitted calibration is a small JSON file that travels with the checkpoint.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mirokit.atomic import SOLE_WRITER, write_json_atomic, write_parquet_atomic

NUM_BINS = 64
FORMAT = "mirokit-calibration-v1"


@dataclass
class RewardCalibration:
    """Bin edges and statistics of one reward's raw scores."""

    edges: list[float]
    """the NUM_BINS - 1 interior edges (ascending); bin b holds edges[b-2] <= x < edges[b-1]"""
    count: int
    """scores seen (including missing)"""
    missing: int
    """missing scores: NaN, and +-inf (no bin can hold them)"""
    mean: float
    std: float
    min: float
    max: float

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """raw: (N,) scores -> (N,) float32 multiples of 1/63 in [0, 1]; NaN and +-inf (missing, as when fitted)
        -> NaN."""
        raw = np.asarray(raw, dtype=np.float64)
        bins = np.searchsorted(np.asarray(self.edges, dtype=np.float64), raw, side="right")  # 0..63
        out = (bins / (NUM_BINS - 1)).astype(np.float32)
        out[~np.isfinite(raw)] = np.nan
        return out


class RewardAccumulator:
    """Streams one reward's raw scores: keeps only the sorted unique values and running statistics."""

    def __init__(self, key: str = "reward"):
        self.key = key
        self.unique = np.zeros(0, dtype=np.float64)
        self.count = self.missing = 0
        self.total = self.total_sq = 0.0

    def add(self, raw: np.ndarray) -> None:
        """Add a chunk of raw scores (N,); NaN and +-inf count as missing."""
        raw = np.asarray(raw, dtype=np.float64).reshape(-1)
        finite = raw[np.isfinite(raw)]
        self.count += raw.size
        self.missing += raw.size - finite.size
        self.total += float(finite.sum())
        self.total_sq += float((finite ** 2).sum())
        self.unique = np.union1d(self.unique, finite)

    def finish(self) -> RewardCalibration:
        """Bin edges from the quantiles of the unique scores; no or all-NaN scores is a one-line error."""
        if self.count == 0:
            raise ValueError(f"cannot calibrate {self.key!r}: no scores")
        n = self.count - self.missing
        if n == 0:
            raise ValueError(f"cannot calibrate {self.key!r}: all {self.count} scores are missing (NaN)")
        edges = np.quantile(self.unique, np.arange(1, NUM_BINS) / NUM_BINS)
        mean = self.total / n
        return RewardCalibration(
            edges=[float(e) for e in edges], count=self.count, missing=self.missing, mean=mean,
            std=float(np.sqrt(max(self.total_sq / n - mean ** 2, 0.0))),
            min=float(self.unique[0]), max=float(self.unique[-1]),
        )


def fit_reward(raw: np.ndarray, key: str = "reward") -> RewardCalibration:
    """Fit one reward's bins from its raw scores (N,); an empty or all-NaN column is a one-line error."""
    acc = RewardAccumulator(key)
    acc.add(raw)
    return acc.finish()


@dataclass
class Calibration:
    """Calibrations of several rewards, by key."""

    rewards: dict[str, RewardCalibration] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        """The calibrated reward keys, in stored order."""
        return list(self.rewards)

    @classmethod
    def fit(cls, raw: dict[str, np.ndarray]) -> Calibration:
        """{key: (N,) raw scores} -> Calibration."""
        return cls({key: fit_reward(values, key) for key, values in raw.items()})

    def apply(self, key: str, raw: np.ndarray) -> np.ndarray:
        """Calibrate one reward's raw scores; an unknown key is a one-line error listing known keys."""
        if key not in self.rewards:
            raise ValueError(f"no calibration for reward {key!r}; calibrated: {', '.join(self.rewards) or 'none'}")
        return self.rewards[key].apply(raw)

    def apply_all(self, raw: dict[str, np.ndarray], keys: list[str] | None = None) -> np.ndarray:
        """{key: (N,)} -> (N, K) float32 calibrated matrix in `keys` order (default: self.keys)."""
        keys = keys or self.keys
        return np.stack([self.apply(k, raw[k]) for k in keys], axis=1)

    def to_json(self) -> dict:
        """The JSON document `save` writes: format, bin count and each reward's edges and statistics."""
        return {"format": FORMAT, "num_bins": NUM_BINS,
                "rewards": {k: vars(v) for k, v in self.rewards.items()}}

    def save(self, path: str | Path) -> None:
        """Write the calibration JSON (atomically; one writer per file)."""
        write_json_atomic(path, self.to_json(), SOLE_WRITER, indent=1)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a calibration JSON; a missing or malformed file is a one-line error."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file not found: {path}")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("num_bins") != NUM_BINS:
                raise ValueError(f"unsupported format {data.get('format')!r}")
            rewards = {k: RewardCalibration(**v) for k, v in data["rewards"].items()}
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not a mirokit calibration file: {err}") from None
        for key, cal in rewards.items():
            if len(cal.edges) != NUM_BINS - 1 or any(not math.isfinite(e) for e in cal.edges):
                raise ValueError(f"{path}: reward {key!r} must have {NUM_BINS - 1} finite edges")
        return cls(rewards)


def parquet_files(inputs: list[str | Path]) -> list[Path]:
    """Parquet files and folders of them (their *.parquet, sorted) -> the files; a missing input or none found is
    a one-line error."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(path.glob("*.parquet"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    if not files:
        raise ValueError("no parquet files found in the inputs")
    return files


def _reward_columns(schema, requested: list[str] | None, path: Path) -> list[str]:
    import pyarrow as pa

    floats = [f.name for f in schema if pa.types.is_floating(f.type) and f.name not in ("key", "caption", "error")]
    if requested is None:
        return floats
    for key in requested:
        if key not in schema.names:
            raise ValueError(f"unknown reward key {key!r} in {path}; columns: {', '.join(floats) or 'none'}")
    return requested


def _read_parquet(path: Path, read):
    """read(path), with a file pyarrow cannot read (torn, not parquet) as a ValueError naming it."""
    import pyarrow as pa

    try:
        return read(path)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{path}: not a readable parquet file ({str(err).splitlines()[0]})") from err


def fit_calibration(files: list[Path], rewards: list[str] | None = None, captions: tuple[str, ...] = ()) -> Calibration:
    """Stream over score parquet files (memory holds only each reward's unique values) -> a Calibration with 64
    quantile bins per reward column (default: every float column but key/caption/error). The columns
    NAME_<reward> of each named caption in `captions` are pooled into <reward>'s bins."""
    import pyarrow.parquet as pq

    accumulators: dict[str, RewardAccumulator] = {}
    prefixes = tuple(f"{name}_" for name in captions)
    for path in files:
        pf = _read_parquet(path, pq.ParquetFile)
        keys = _reward_columns(pf.schema_arrow, rewards, path)
        if rewards is None:  # named-caption columns are pooled, not calibrated on their own
            keys = [k for k in keys if not k.startswith(prefixes)]
        pooled = {k: [p + k for p in prefixes if p + k in pf.schema_arrow.names] for k in keys}
        for key in keys:
            accumulators.setdefault(key, RewardAccumulator(key))
        columns = [*keys, *(c for cols in pooled.values() for c in cols)]
        read = lambda _, pf=pf, columns=columns: list(pf.iter_batches(columns=columns, batch_size=65536))
        for batch in _read_parquet(path, read):
            for key in keys:
                for column in [key, *pooled[key]]:
                    accumulators[key].add(batch.column(column).to_numpy(zero_copy_only=False))
    if not accumulators:
        raise ValueError("no reward columns found")
    return Calibration({k: a.finish() for k, a in accumulators.items()})


def apply_calibration(files: list[Path], calibration: Calibration, out_dir: str | Path,
                      rewards: list[str] | None = None) -> list[Path]:
    """Write each score parquet file into OUT with its reward columns mapped to multiples of 1/63 (NaN stays
    NaN) -> the files written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        table = _read_parquet(path, pq.read_table)
        for key in _reward_columns(table.schema, rewards, path):
            values = calibration.apply(key, table.column(key).to_numpy(zero_copy_only=False))
            table = table.set_column(table.schema.get_field_index(key), key, pa.array(values, pa.float32()))
        write_parquet_atomic(out / path.name, table)
        written.append(out / path.name)
    return written


def fit_calibration_file(inputs: list[str | Path], out: str | Path, rewards: list[str] | None = None,
                         captions: tuple[str, ...] = ()) -> Calibration:
    """Fit a calibration on the parquet files of `inputs` (files or folders of them) and write its JSON to `out`
    (what `mirokit calibrate fit` does)."""
    calibration = fit_calibration(parquet_files(inputs), rewards, tuple(captions))
    calibration.save(out)
    return calibration


def describe_calibration(calibration: Calibration) -> str:
    """One line per reward: its score count, the missing ones, mean, std and range."""
    return "\n".join(f"{key}: {rc.count} scores ({rc.missing} missing or not finite), mean {rc.mean:.4g}, "
                     f"std {rc.std:.4g}, range [{rc.min:.4g}, {rc.max:.4g}]" for key, rc in calibration.rewards.items())
