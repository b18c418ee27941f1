"""`image_reward_score`: ImageReward-v1.0 (THUDM/ImageReward) on transformers' BLIP classes.

Score = the normalised ImageReward of (image, caption); the model lives in image_reward_model.py.
Preprocessing follows their `ImageReward._transform(224)`: resize the shorter side to 224 (bicubic,
torchvision sizing: the longer side is truncated with int()), center crop 224 (offsets rounded as
torchvision does), convert to RGB, scale to [0, 1], normalise with the CLIP mean/std. Captions:
bert-base-uncased tokenizer with BLIP's extra tokens, padding="max_length", truncation, max_length 35;
the leading [CLS] is kept.

`model` may be
- a folder written by `convert_image_reward_checkpoint` (config.json + model.safetensors + tokenizer);
- a folder holding their `ImageReward.pt` (+ med_config.json), or the .pt file itself: converted in
  memory at load time (tokenizer: the `tokenizer` option, default the hub's bert-base-uncased);
- the hub id THUDM/ImageReward (default): their two files are downloaded, then as above.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirokit.rewards.base import ModelScorer
from mirokit.rewards.registry import register_scorer

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_REWARD_SIZE = 224


def resize_shorter_side(image, size: int):
    """PIL image -> shorter side `size` (bicubic), the longer side int(size * long / short), as
    torchvision's Resize(int); returned unchanged when already that size."""
    from PIL import Image

    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) == (w, h):
        return image
    return image.resize((new_w, new_h), Image.Resampling.BICUBIC)


def normalize_images(arrays: list[np.ndarray], mean, std):
    """N uint8 arrays (H, W, 3) -> float32 tensor (N, 3, H, W): x / 255, then (x - mean) / std."""
    import torch

    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub(m).div(s)


def preprocess_image_reward(images: list, size: int = IMAGE_REWARD_SIZE):
    """N PIL images -> (N, 3, size, size) float32, as their Resize/CenterCrop/RGB/ToTensor/Normalize."""
    arrays = []
    for i, image in enumerate(images):
        if not hasattr(image, "size") or not hasattr(image, "convert"):
            raise TypeError(f"image_reward_score: image {i} is not a PIL image ({type(image).__name__})")
        image = resize_shorter_side(image, size)
        w, h = image.size
        left, top = round((w - size) / 2.0), round((h - size) / 2.0)
        image = image.crop((left, top, left + size, top + size)).convert("RGB")
        arrays.append(np.asarray(image, dtype=np.uint8))
    return normalize_images(arrays, CLIP_MEAN, CLIP_STD)


def load_image_reward(name_or_path: str, is_local: bool, tokenizer: str | None = None, hub_kwargs: dict | None = None):
    """(ImageRewardModel in eval mode on CPU, float32; tokenizer) from any `model` form listed above."""
    from mirokit.rewards import image_reward_model as irm

    hub_kwargs = dict(hub_kwargs or {})
    hub_kwargs.pop("trust_remote_code", None)
    path = Path(name_or_path)
    if is_local and path.is_dir() and (path / "config.json").is_file():
        model, info = irm.ImageRewardModel.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
        bad = sorted(info["missing_keys"]) + sorted(str(k) for k in info["mismatched_keys"])
        if bad:
            raise ValueError(f"image_reward_score: {path} lacks weight {bad[0]!r} ({len(bad)} keys)")
        model.eval()
        source = tokenizer or str(path)
        if tokenizer is None and not any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
            raise FileNotFoundError(
                f"image_reward_score: no tokenizer files in {path}; pass tokenizer=<bert-base-uncased>")
        return model, irm.load_blip_tokenizer(source, **hub_kwargs)
    if is_local:
        pt = path / "ImageReward.pt" if path.is_dir() else path
        if not pt.is_file():
            raise FileNotFoundError(f"image_reward_score: {path} has neither config.json nor ImageReward.pt")
        med = pt.parent / "med_config.json"
    else:
        from huggingface_hub import hf_hub_download

        pt = Path(hf_hub_download(name_or_path, "ImageReward.pt"))
        med = Path(hf_hub_download(name_or_path, "med_config.json"))
    config, state = irm.convert_image_reward(irm.load_original_state_dict(pt), med if med.is_file() else None)
    tok = irm.load_blip_tokenizer(tokenizer or "bert-base-uncased", **hub_kwargs)
    return irm.build_image_reward(config, state), tok


@register_scorer("image_reward_score", "ImageReward-v1.0 (BLIP ViT-L + cross-attending BERT + MLP), normalised")
class ImageRewardScorer(ModelScorer):
    """Normalised ImageReward per (image, caption); options as ModelScorer plus `tokenizer` (a
    bert-base-uncased folder/hub id, needed only when the model folder has no tokenizer files)."""

    key = "image_reward_score"
    default_model = "THUDM/ImageReward"

    def __init__(self, model: str | None = None, *, tokenizer: str | None = None, **options):
        super().__init__(model, **options)
        self.tokenizer_name = tokenizer

    def _load(self) -> None:
        model, self.tokenizer = load_image_reward(self.model_path, self.is_local, self.tokenizer_name,
                                                  self.hub_kwargs())
        model.to(device=self.device, dtype=self.dtype)
        model.mlp.float()  # their head runs in float32 on `.float()` features
        self.model = model
        self.image_size = model.config.vision_config.image_size
        self.max_length = int(getattr(model.config, "image_reward_max_length", 35))

    def _score_batch(self, images: list, captions: list[str]) -> np.ndarray:
        for i, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise TypeError(f"image_reward_score: caption {i} is not a string ({type(caption).__name__})")
        pixels = preprocess_image_reward(images, self.image_size).to(self.device, self.dtype)
        tokens = self.tokenizer(captions, padding="max_length", truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        rewards = self.model.reward(pixels, tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device))
        return rewards.float().cpu().numpy()
