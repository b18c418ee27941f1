"""Measured rewards of studio images, and what a target means in raw scores.

The scorers are the ones the model's calibration names (its reward keys that have a calibration), built on
first use through the reward registry (mirokit.rewards); a scorer that cannot be built here (no weights, no
network) is reported once as unavailable with its one-line reason, and its scores are left out.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from mirokit.data.calibration import NUM_BINS


def target_meaning(calibration, key: str, value: float | None) -> dict:
    """What target `value` of reward `key` stands for: the raw-score range of its calibration bin and the share of
    the training scores below it ({} without a calibration for `key`; {"missing": True} for None)."""
    if value is None:
        return {"missing": True}
    if calibration is None or key not in calibration.rewards:
        return {}
    cal = calibration.rewards[key]
    edges = cal.edges
    k = int(round(value * (NUM_BINS - 1)))
    low = cal.min if k == 0 else edges[k - 1]
    high = cal.max if k >= len(edges) else edges[k]
    return {"bin": k, "raw_low": float(low), "raw_high": float(high),
            "percentile_low": 100.0 * k / NUM_BINS, "percentile_high": 100.0 * (k + 1) / NUM_BINS}


class RewardMeter:
    """Scores images with the rewards a pipeline's calibration names; thread-safe, scorers built lazily."""

    def __init__(self, pipe, options: dict[str, dict] | None = None):
        calibration = pipe.calibration
        self.calibration = calibration
        self.keys = [k for k in pipe.reward_keys if calibration is not None and k in calibration.rewards]
        self._options = options or {}
        self._scorers: dict = {}
        self.unavailable: dict[str, str] = {}
        self._lock = threading.Lock()

    def _scorer(self, key: str):
        if key in self._scorers or key in self.unavailable:
            return self._scorers.get(key)
        from mirokit.rewards.registry import build_scorer

        try:
            self._scorers[key] = build_scorer(key, **self._options.get(key, {}))
        except Exception as err:  # unknown key, missing weights, no network: all reported alike
            text = str(err).strip()
            self.unavailable[key] = text.splitlines()[0] if text else type(err).__name__
        return self._scorers.get(key)

    def measure(self, images: list, prompts: list[str]) -> list[dict]:
        """N PIL images + N prompts -> N dicts {key: {"raw": score, "value": calibrated target}} (keys whose
        scorer is unavailable, or whose score is NaN, left out)."""
        out: list[dict] = [{} for _ in images]
        with self._lock:
            for key in self.keys:
                scorer = self._scorer(key)
                if scorer is None:
                    continue
                try:
                    raw = np.asarray(scorer.score(images, prompts), dtype=np.float64)
                except Exception as err:
                    text = str(err).strip()
                    self.unavailable[key] = text.splitlines()[0] if text else type(err).__name__
                    continue
                values = self.calibration.apply(key, raw)
                for i, (r, v) in enumerate(zip(raw.tolist(), values.tolist())):
                    if not math.isnan(r):
                        out[i][key] = {"raw": r, "value": v}
        return out


