"""The shapes world's captioner: describes an image from its pixels with the ShapesDetector, in the world's caption
phrasing. Accurate where the detector is, but limited to its templates: the analogue of a VLM recaptioning web
images (their alt-texts are the world's noisy captions). Registered as the captioner `world_detector`.
"""

from __future__ import annotations

import numpy as np

from mirokit.captions.registry import CAPTIONERS
from mirokit.world.captions import describe_scene, free_form_caption, phrase
from mirokit.world.detector import ShapesDetector
from mirokit.world.scenes import Scene, WorldObject

NOTHING = "an empty grey background"
"""the caption of an image in which the detector finds nothing"""


@CAPTIONERS.register("world_detector", description="the shapes world's pixel detector, phrased as world captions")
class WorldCaptioner:
    """min_score: detections below this confidence are left out of the caption."""

    def __init__(self, min_score: float = 0.5, **detector_options):
        self.detector = ShapesDetector(**detector_options)
        self.min_score = float(min_score)

    def caption(self, images: list, hints: list[str | None], *, short: bool = False) -> list[str]:
        """N PIL images (equal sizes) -> N captions; hints are ignored (the detector reads only pixels). The short
        form names the classes and counts only."""
        if not images:
            return []
        arrays = np.stack([np.asarray(im.convert("RGB")) for im in images])
        out = []
        for detections in self.detector.detect_batch(arrays):
            objects = tuple(WorldObject(d.cls, d.colour, (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2,
                                        max(d.box[2] - d.box[0], d.box[3] - d.box[1]) / 2)
                            for d in detections if d.score >= self.min_score)
            objects = tuple(sorted(objects, key=lambda o: (round(o.cy * 4), o.cx)))  # reading order
            if not objects:
                out.append(NOTHING)
                continue
            groups, relation = describe_scene(Scene(objects))
            if short:
                out.append(" and ".join(phrase(g, colour=False) for g in groups))
            else:
                # one fixed phrasing per image: the same image always gets the same caption
                out.append(free_form_caption(groups, np.random.default_rng(0), relation=relation)[0])
        return out

    def describe(self) -> dict:
        """What wrote the captions (kind, minimum detection score, the detector's config), for the manifest."""
        return {"kind": "world_detector", "min_score": self.min_score, "detector": vars(self.detector.config)}
