"""ShapesEval: GenEval's protocol on the shapes world, with ShapesDetector in place of Mask2Former.

The folder code (GenEval layout, batching, records, summary, errors counted) is
mirokit.evaluate.geneval_folder; this module only plugs the world's pixel detector into it. Colours
come from the detector (each Detection has `.colour`), so no colour classifier is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirokit.evaluate import geneval_folder
from mirokit.evaluate.geneval_folder import format_summary, summarize_records, write_results
from mirokit.evaluate.geneval_rules import DEFAULT_RULES, RuleConfig
from mirokit.world.detector import ShapesDetector

__all__ = ["ShapesFolderDetector", "evaluate_folder", "format_summary", "summarize_records", "write_results"]


class ShapesFolderDetector:
    """ShapesDetector behind the folder evaluation's detector interface (PIL images in)."""

    def __init__(self, detector: ShapesDetector | None = None):
        self.detector = detector or ShapesDetector()

    def detect(self, images: list) -> list[list]:
        """N PIL RGB images -> N flat lists of world Detections (class, box in image fractions, colour, score)."""
        return [self.detector.detect(np.asarray(image)) for image in images]


def evaluate_folder(folder: str | Path, *, rules: RuleConfig = DEFAULT_RULES,
                    detector: ShapesDetector | None = None) -> tuple[list[dict], dict]:
    """Evaluate every sample of a GenEval-layout folder with ShapesDetector -> (per-image records, summary).

    Records and summary as mirokit.evaluate.geneval_folder.evaluate_folder; each record also lists every
    raw detection ("detections": [Detection.to_json()]). A missing folder raises FileNotFoundError;
    everything else is reported.
    """
    return geneval_folder.evaluate_folder(folder, detector=ShapesFolderDetector(detector), rules=rules)
