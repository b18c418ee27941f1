"""The `geneval` prompt metric: GenEval's 553 prompts, Mask2Former + CLIP colours under GenEval's rules.

What `mirokit eval tune-targets --metric geneval` (and the sweeps) maximise, on images held in memory:
per image 1.0 when its detections satisfy its record, else 0.0 (NaN when the detector rejects the image);
the value is GenEval's overall, the mean over tags of each tag's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirokit.evaluate.geneval_colour import DEFAULT_CLIP
from mirokit.evaluate.geneval_detector import FACEBOOK_HUB_ID
from mirokit.evaluate.geneval_rules import DEFAULT_RULES, RuleConfig
from mirokit.evaluate.metrics import METRICS, tag_mean


@METRICS.register("geneval", description="GenEval (Mask2Former + CLIP colours, official rules): mean of per-tag "
                                         "accuracies")
class GenEvalMetric:
    """GenEval accuracy of generated images.

    detector: a `mirokit convert geneval-detector` folder (published numbers) or a Mask2Former hub id/folder;
    clip: CLIP hub id or folder for colours; device: torch device string; prompts: another GenEval-schema
    JSONL (default the official 553); batch_size: images per detector forward; rules: GenEval's options.
    """

    name = "geneval"

    def __init__(self, *, detector: str = FACEBOOK_HUB_ID, clip: str = DEFAULT_CLIP, device: str = "cpu",
                 prompts: str | None = None, batch_size: int = 4, rules: RuleConfig = DEFAULT_RULES):
        from mirokit.evaluate.geneval_colour import ClipColourClassifier
        from mirokit.evaluate.geneval_detector import Mask2FormerDetector

        self.prompt_path = prompts
        self.rules = rules
        self.batch_size = batch_size
        self.detector = Mask2FormerDetector(detector, device=device,
                                            min_score=min(rules.threshold, rules.counting_threshold))
        self.colour = ClipColourClassifier(clip, device=device)

    def prompts(self) -> list[dict]:
        """The GenEval records (each with "tag", "include", "prompt")."""
        from mirokit.evaluate.geneval_data import load_geneval_prompts

        return load_geneval_prompts(self.prompt_path)

    def score(self, images: np.ndarray, records: list[dict]) -> np.ndarray:
        """images: (N, H, W, 3) uint8, records: N GenEval records -> (N,) float64: 1.0 correct, 0.0 wrong."""
        from PIL import Image

        from mirokit.evaluate.geneval_folder import ImageItem, evaluate_items

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
        if len(images) != len(records):
            raise ValueError(f"{len(images)} images but {len(records)} records")

        items = [ImageItem(prompt_index=k, filename=f"image {k}", path=Path(f"image {k}"), metadata=record)
                 for k, record in enumerate(records)]
        records_out = evaluate_items(items, detector=self.detector, colour=self.colour, rules=self.rules,
                                     batch_size=self.batch_size, progress=False,
                                     loader=lambda item: Image.fromarray(images[item.prompt_index]))
        out = [r["correct"] for r in records_out]
        return np.array([np.nan if c is None else float(c) for c in out])

    def summarize(self, per_image: np.ndarray, records: list[dict]) -> float:
        """GenEval's overall: the mean over tags of each tag's accuracy (NaN images left out)."""
        return tag_mean(per_image, records)
