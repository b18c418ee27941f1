"""GenEval's colour classifier: zero-shot CLIP ViT-L/14 over 10 colours, on transformers' CLIPModel.

Exactly as GenEval's `evaluate_images.py` (open_clip ViT-L-14 "openai" + clip_benchmark 1.4.0):

- crop: the object's mask composites the image over a flat #999 background (`bgcolor`, or the image itself
  with "original"), then the detection box is cropped (PIL rounds the float box); `crop=False` keeps the
  whole composited image;
- image transform (open_clip's for the OpenAI weights): resize the shorter side to 224 with PIL bicubic
  (the longer to int(224 * long / short)), centre-crop 224 x 224 at int(round((size - 224) / 2)), scale to
  [0, 1], normalise with the OpenAI mean/std;
- classifier: for each colour the three templates "a photo of a {c} {object}", "a photo of a {c}-colored
  {object}", "a photo of a {c} object" are encoded, each embedding L2-normalised, averaged, and the mean
  re-normalised; an image's colour is the argmax of 100 * normalised image embedding @ classifier;
- clip_benchmark runs both under CUDA fp16 autocast (amp=True): `amp=None` does the same on CUDA and
  runs fp32 elsewhere.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from mirokit.evaluate.geneval_rules import COLORS, box_of

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
TEMPLATES = ("a photo of a {c} {object}", "a photo of a {c}-colored {object}", "a photo of a {c} object")
"""GenEval's three colour templates ({c}: colour word, {object}: the clause's class name)"""
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT_LENGTH = 77


def object_crop(image, box, mask=None, *, background: str = "#999", crop: bool = True):
    """GenEval's ImageCrops item before the transform: PIL RGB image, box (x0, y0, x1, y1[, score]) in
    pixels, mask (H, W) bool or None -> PIL RGB image."""
    from PIL import Image

    image = image.convert("RGB")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (image.height, image.width):
            raise ValueError(f"mask of shape {mask.shape} does not match the image ({image.height}, {image.width})")
        blank = image.copy() if background == "original" else Image.new("RGB", image.size, color=background)
        image = Image.composite(image, blank, Image.fromarray(mask))
    if crop:
        image = image.crop(tuple(float(v) for v in list(box)[:4]))
    return image


def clip_transform(images: list, size: int = 224):
    """open_clip's eval transform of N PIL images -> (N, 3, size, size) float32 tensor."""
    import torch
    from PIL import Image

    out = []
    for image in images:
        image = image.convert("RGB")
        width, height = image.size
        if width <= height:
            new_w, new_h = size, int(size * height / width)
        else:
            new_w, new_h = int(size * width / height), size
        if (new_w, new_h) != (width, height):
            image = image.resize((new_w, new_h), Image.BICUBIC)
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        image = image.crop((left, top, left + size, top + size))
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        out.append((x - torch.tensor(OPENAI_MEAN).view(3, 1, 1)) / torch.tensor(OPENAI_STD).view(3, 1, 1))
    return torch.stack(out)


def _features(out):
    """get_*_features output -> (B, E): a tensor (transformers 4) or `.pooler_output` (transformers 5)."""
    return out if hasattr(out, "dim") else out.pooler_output


class ClipColourClassifier:
    """GenEval's colour classification (folder evaluation's colour-classifier interface).

    model: hub id or local folder of a transformers CLIPModel with its tokenizer (default the OpenAI ViT-L/14,
    the weights open_clip loads as "openai"); background/crop: GenEval's bgcolor/crop options; batch_size:
    crops per forward (GenEval: 16); amp: fp16 autocast (None = on CUDA only, as GenEval).
    """

    def __init__(self, model: str = DEFAULT_CLIP, *, device: str = "cpu", batch_size: int = 16,
                 background: str = "#999", crop: bool = True, amp: bool | None = None):
        from PIL import ImageColor

        from mirokit.sources import locate

        self.model_path, self.is_local = locate(model, "GenEval colour CLIP")
        if self.is_local and not (Path(self.model_path) / "config.json").is_file():
            raise FileNotFoundError(f"CLIP folder {self.model_path} has no config.json")
        if background != "original":
            try:
                ImageColor.getrgb(background)
            except ValueError:
                raise ValueError(f"background {background!r} is neither a colour nor 'original'") from None
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.device, self.batch_size, self.background, self.crop = device, batch_size, background, crop
        self.amp = amp if amp is not None else str(device).startswith("cuda")
        self.model = self.tokenizer = None
        self._weights: dict = {}

    def load(self) -> ClipColourClassifier:
        """Load CLIP and its tokenizer now (otherwise on the first classify)."""
        if self.model is not None:
            return self
        from transformers import AutoTokenizer, CLIPModel

        hub = {"local_files_only": True} if self.is_local else {}
        try:
            self.model = CLIPModel.from_pretrained(self.model_path, **hub).to(self.device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, **hub)
        except (OSError, ValueError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise FileNotFoundError(f"cannot load CLIP {self.model_path!r}: {first}") from None
        self.image_size = self.model.config.vision_config.image_size
        return self

    def _autocast(self):
        import torch

        return torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()

    def text_weights(self, classname: str):
        """The zero-shot classifier of one object class -> (E, 10) tensor, column k = COLORS[k] (cached)."""
        import torch
        import torch.nn.functional as F

        if classname not in self._weights:
            self.load()
            columns = []
            with torch.no_grad(), self._autocast():
                for colour in COLORS:
                    texts = [t.format(c=colour, object=classname) for t in TEMPLATES]
                    tok = self.tokenizer(texts, padding="max_length", truncation=True, max_length=CONTEXT_LENGTH,
                                         return_tensors="pt").to(self.device)
                    emb = _features(self.model.get_text_features(input_ids=tok["input_ids"],
                                                                 attention_mask=tok["attention_mask"]))
                    mean = F.normalize(emb, dim=-1).mean(dim=0)
                    columns.append(mean / mean.norm())
            self._weights[classname] = torch.stack(columns, dim=1)
        return self._weights[classname]

    def logits(self, crops: list, classname: str):
        """N object crops (PIL) -> (N, 10) logits 100 * cos(image, colour classifier)."""
        import torch
        import torch.nn.functional as F

        self.load()
        weights = self.text_weights(classname)
        out = []
        with torch.no_grad():
            for start in range(0, len(crops), self.batch_size):
                pixels = clip_transform(crops[start:start + self.batch_size], self.image_size).to(self.device)
                with self._autocast():
                    feats = F.normalize(_features(self.model.get_image_features(pixel_values=pixels)), dim=-1)
                    out.append((100.0 * feats @ weights).float().cpu())
        return torch.cat(out) if out else torch.zeros((0, len(COLORS)))

    def classify(self, image, detections: list, classname: str) -> list[str]:
        """GenEval's color_classification: PIL RGB image, detections with .box (pixels) and .mask (or None)
        -> one colour word per detection."""
        if not detections:
            return []
        crops = [object_crop(image, box_of(d), getattr(d, "mask", None), background=self.background,
                             crop=self.crop) for d in detections]
        return [COLORS[int(i)] for i in self.logits(crops, classname).argmax(dim=1)]

    def describe(self) -> dict:
        """What runs: model, background, crop, amp."""
        return {"model": self.model_path, "background": self.background, "crop": self.crop, "amp": self.amp}
