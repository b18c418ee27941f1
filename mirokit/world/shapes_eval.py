"""ShapesEval: GenEval's protocol on the shapes world, with ShapesDetector in place of Mask2Former.

The folder code (GenEval layout, batching, records, summary, errors counted) is
mirokit.evaluate.geneval_folder; this module only plugs the world's pixel detector into it. Colours
come from the detector (each Detection has `.colour`), so no colour classifier is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirokit.atomic import save_image_atomic, write_atomic
from mirokit.evaluate import geneval_folder
from mirokit.evaluate.geneval_folder import format_summary, summarize_records, write_results
from mirokit.evaluate.geneval_rules import DEFAULT_RULES, RuleConfig
from mirokit.world.detector import ShapesDetector

__all__ = ["ShapesFolderDetector", "evaluate_folder", "format_summary", "render_ground_truth", "summarize_records",
           "write_results"]


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


def render_ground_truth(out: str | Path, prompts: str | Path | None = None, *, images_per_prompt: int = 4,
                        seed: int = 0, size: int = 32, mismatch: bool = False) -> int:
    """Render scenes satisfying each GenEval-schema prompt (default: ShapesEval's) into GenEval's layout:
    OUT/00000/metadata.jsonl + OUT/00000/samples/0000.png ...; with `mismatch`, each prompt's images come from
    another prompt (a fixed derangement: a wrong baseline the evaluator must score low). Returns the number of
    prompts."""
    import json

    from mirokit.world.prompts import derangement, load_shapes_eval
    from mirokit.world.render import render_batch
    from mirokit.world.sampling import WorldConfig, scene_for_metadata

    if images_per_prompt < 1:
        raise ValueError("--images-per-prompt must be >= 1")
    records = load_shapes_eval(prompts)
    cfg = WorldConfig(image_size=size, seed=seed)
    sources = derangement(records, seed) if mismatch else list(range(len(records)))
    for i, item in enumerate(records):
        folder = Path(out) / f"{i:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "metadata.jsonl", json.dumps(item))  # one JSON object, as GenEval's generator writes it
        rng = np.random.default_rng([seed, i])
        scenes = [scene_for_metadata(records[sources[i]], rng, cfg) for _ in range(images_per_prompt)]
        for j, image in enumerate(render_batch(scenes, size)):
            save_image_atomic(folder / "samples" / f"{j:04d}.png", image)
    return len(records)
