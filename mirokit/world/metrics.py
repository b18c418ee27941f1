"""The `shapes` metric (ShapesEval as a PromptMetric): what `mirokit eval tune-targets --metric shapes` and
`mirokit eval sweep --metric shapes` maximise on the shapes world.

Prompts: ShapesEval's 553 GenEval-schema records (mirokit/world/shapes_eval.jsonl); per image 1.0 when
ShapesDetector's detections satisfy the record under GenEval's rules, else 0.0; the value is GenEval's
overall, the mean of the per-tag accuracies.
"""

from __future__ import annotations

import numpy as np

from mirokit.evaluate.geneval_rules import DEFAULT_RULES, evaluate_detections
from mirokit.evaluate.metrics import METRICS, tag_mean
from mirokit.world.prompts import load_shapes_eval


@METRICS.register("shapes", description="ShapesEval: GenEval's rules on the shapes world (mean of per-tag accuracies)")
class ShapesMetric:
    """ShapesEval accuracy; `prompts`: another GenEval-schema JSONL over the shapes vocabulary (optional)."""

    name = "shapes"

    def __init__(self, *, prompts: str | None = None, **detector_options):
        from mirokit.world.detector import ShapesDetector

        self.path = prompts
        self.detector = ShapesDetector(**detector_options)

    def prompts(self) -> list[dict]:
        """The GenEval-schema records (each with "tag", "include", "prompt")."""
        return load_shapes_eval(self.path)

    def score(self, images: np.ndarray, records: list[dict]) -> np.ndarray:
        """images: (N, H, W, 3) uint8, records: N GenEval records -> (N,) 1.0 correct / 0.0 wrong."""
        if len(images) != len(records):
            raise ValueError(f"{len(images)} images but {len(records)} records")
        out = np.zeros(len(records))
        for k, (dets, record) in enumerate(zip(self.detector.detect_batch(images), records)):
            out[k] = float(evaluate_detections(dets, record, rules=DEFAULT_RULES)[0])
        return out

    def summarize(self, per_image: np.ndarray, records: list[dict]) -> float:
        """GenEval's overall: the mean over tags of each tag's accuracy."""
        return tag_mean(per_image, records)
