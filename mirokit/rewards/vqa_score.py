"""`vqa_score`: VQAScore (Lin et al. 2024) with CLIP-FlanT5, as t2v_metrics' `CLIPT5Model.forward`.

Per (image, caption): question 'Does this figure show "{caption}"? Please answer yes or no.' in the
"t5_chat" prompt `SYSTEM_MSG + " USER: <image>\\n" + question + " ASSISTANT: "`; the text on each
side of `<image>` is tokenized separately (each chunk gets the tokenizer's special tokens, i.e. its
own "</s>") and joined around the placeholder -200; inputs are right-padded with the pad id and
truncated to 2048 ids, the mask is `ids != pad`. The label is the tokenized answer "Yes" ("▁Yes",
"</s>"), padded with -100. Score = exp(-mean cross-entropy over the label tokens) in (0, 1].
Images: RGB, padded to a square with the background int(255 * CLIP mean) = (122, 116, 104)
("pad" aspect ratio), resized (shorter side 336, bicubic), center cropped 336, scaled to [0, 1] and
normalised with the CLIP mean/std (openai/clip-vit-large-patch14-336's CLIPImageProcessor).

`model` is a folder in our layout (vqa_model.py); the default hub id zhiqiulin/clip-flant5-xxl and
their folder layout need a one-time `python -m mirokit.rewards.vqa_convert SRC OUT --tokenizer
google/flan-t5-xxl` first (an 11B model is not converted on the fly).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mirokit.rewards.base import ModelScorer
from mirokit.rewards.image_reward import normalize_images, resize_shorter_side
from mirokit.rewards.registry import register_scorer

IMAGE_TOKEN_INDEX = -200
IGNORE_INDEX = -100
CONVERT_HINT = "convert it first: python -m mirokit.rewards.vqa_convert SRC OUT --tokenizer google/flan-t5-xxl"


def expand2square(image, background: tuple[int, int, int]):
    """PIL image -> square of side max(w, h), the image centered (offset (side - short) // 2) on `background`."""
    from PIL import Image

    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, (0, (w - h) // 2) if w > h else ((h - w) // 2, 0))
    return canvas


def preprocess_clip_t5(images: list, size: int, mean, std, pad: bool = True):
    """N PIL images -> (N, 3, size, size) float32 (RGB, optional square padding, CLIPImageProcessor steps)."""
    arrays = []
    background = tuple(int(x * 255) for x in mean)
    for i, image in enumerate(images):
        if not hasattr(image, "size") or not hasattr(image, "convert"):
            raise TypeError(f"vqa_score: image {i} is not a PIL image ({type(image).__name__})")
        image = image.convert("RGB")
        if pad:
            image = expand2square(image, background)
        image = resize_shorter_side(image, size)
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        arrays.append(np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8))
    return normalize_images(arrays, mean, std)


def tokenize_with_image(text: str, tokenizer) -> list[int]:
    """Their `t5_tokenizer_image_token`: tokenize the chunks around "<image>" separately (special tokens
    included) and join them with IMAGE_TOKEN_INDEX."""
    ids: list[int] = []
    for i, chunk in enumerate(text.split("<image>")):
        if i:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(tokenizer(chunk).input_ids)
    return ids


def build_vqa_inputs(tokenizer, captions: list[str], config) -> dict:
    """Captions -> {"input_ids" (B, L) long with one -200 each, "attention_mask" (B, L) bool,
    "labels" (B, T) long, -100 = padding} for a CLIPT5Config `config`."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"vqa_score: caption {i} is not a string ({type(caption).__name__})")
    if tokenizer.pad_token_id is None:
        raise ValueError("vqa_score: the tokenizer has no pad token")
    questions = [tokenize_with_image(config.format_question(c), tokenizer) for c in captions]
    answers = [tokenize_with_image(config.answer_template.format(c), tokenizer) for c in captions]
    input_ids = pad_sequence([torch.tensor(q, dtype=torch.long) for q in questions], batch_first=True,
                             padding_value=tokenizer.pad_token_id)[:, :config.context_len]
    labels = pad_sequence([torch.tensor(a, dtype=torch.long) for a in answers], batch_first=True,
                          padding_value=IGNORE_INDEX)[:, :config.context_len]
    return {"input_ids": input_ids, "attention_mask": input_ids.ne(tokenizer.pad_token_id), "labels": labels}


@register_scorer("vqa_score", "VQAScore: P('Yes' | image, 'Does this figure show \"caption\"?') with CLIP-FlanT5")
class VQAScorer(ModelScorer):
    """VQAScore per (image, caption) in (0, 1]; options as ModelScorer plus `tokenizer` (a
    google/flan-t5-xxl folder/hub id, needed only when the model folder has no tokenizer files)."""

    key = "vqa_score"
    default_model = "zhiqiulin/clip-flant5-xxl"

    def __init__(self, model: str | None = None, *, tokenizer: str | None = None, **options):
        super().__init__(model, **options)
        self.tokenizer_name = tokenizer

    def _load(self) -> None:
        from transformers import AutoTokenizer

        from mirokit.rewards.vqa_model import CONFIG_TYPE, CLIPT5ForVQAScore

        path = Path(self.model_path)
        if not self.is_local:
            raise ValueError(f"vqa_score: {self.model_path} is a hub id; download it and {CONVERT_HINT}")
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"vqa_score: no config.json in {path}")
        if json.loads(config_file.read_text()).get("model_type") != CONFIG_TYPE:
            raise ValueError(f"vqa_score: {path} is not in mirokit's CLIP-T5 layout; {CONVERT_HINT}")
        if self.tokenizer_name is None and not (path / "tokenizer").is_dir():
            raise FileNotFoundError(f"vqa_score: no tokenizer/ in {path}; pass tokenizer=<google/flan-t5-xxl>")
        kwargs = {k: v for k, v in self.hub_kwargs().items() if k != "trust_remote_code"}
        self.tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name or str(path / "tokenizer"), **kwargs)
        self.model = CLIPT5ForVQAScore.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        # t2v_metrics resizes the embeddings to len(tokenizer) (32100 < 32128): softmax over those ids only
        self.vocab_size = min(len(self.tokenizer), self.model.language_model.config.vocab_size)

    def _score_batch(self, images: list, captions: list[str]) -> np.ndarray:
        cfg = self.model.config
        inputs = build_vqa_inputs(self.tokenizer, captions, cfg)
        pixels = preprocess_clip_t5(images, self.model.image_size, cfg.image_mean, cfg.image_std,
                                    pad=cfg.image_aspect_ratio == "pad")
        # input_ids stay on the host: the model finds the image placeholder there (no device sync per row)
        probs = self.model.answer_probability(pixels.to(self.device), inputs["input_ids"],
                                              inputs["attention_mask"].to(self.device),
                                              inputs["labels"].to(self.device), vocab_size=self.vocab_size)
        return probs.float().cpu().numpy()
