"""ImageReward-v1.0 as a transformers BLIP model, plus the converter from the published checkpoint.

Architecture (THUDM/ImageReward, `ImageReward.py` + BLIP `blip_pretrain.py`/`vit.py`/`med.py`):
- image (B, 3, 224, 224) -> BLIP ViT-L/16 (24 layers, width 1024, 16 heads, LayerNorm eps 1e-6)
  -> image tokens (B, 197, 1024);
- prompt ids (B, 35) -> BLIP text encoder (BERT-base, 12 layers, width 768) whose every layer
  cross-attends to the image tokens; the [CLS] hidden state (B, 768) is the joint feature;
- MLP head 768 -> 1024 -> 128 -> 64 -> 16 -> 1 (linear layers only: their ReLUs are commented out;
  dropouts 0.2, 0.2, 0.1 inactive at eval) -> raw reward (B,);
- reward = (raw - 0.16717362830052426) / 1.0333394966054072.

Here the ViT is `BlipVisionModel`, the text encoder `BlipTextModel` (cross-attention layers, no
pooler), the head `ImageRewardHead`; keys `vision_model.*` / `text_encoder.*` are those of
`BlipForImageTextRetrieval`. `convert_image_reward` maps their state dict (timm ViT + BLIP `med`
BERT keys, optionally prefixed `blip.`) onto ours; `convert_image_reward_checkpoint` writes a folder
(config.json + model.safetensors + tokenizer files) that `ImageRewardModel.from_pretrained` loads.
"""

import json
import math
import re
from pathlib import Path

import torch
from torch import nn
from transformers import BlipConfig, BlipPreTrainedModel, BlipTextModel, BlipVisionModel

IMAGE_REWARD_MEAN = 0.16717362830052426
IMAGE_REWARD_STD = 1.0333394966054072
IMAGE_REWARD_MAX_LENGTH = 35
HEAD_WIDTHS = (1024, 128, 64, 16, 1)
HEAD_DROPOUTS = (0.2, 0.2, 0.1)

# timm ViT block parameter names -> BlipEncoderLayer names
_VIT_BLOCK = {"norm1": "layer_norm1", "attn.qkv": "self_attn.qkv", "attn.proj": "self_attn.projection",
              "norm2": "layer_norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


class ImageRewardHead(nn.Module):
    """(B, width) -> (B, 1): Linear 1024, Dropout .2, Linear 128, Dropout .2, Linear 64, Dropout .1,
    Linear 16, Linear 1 (indices 0, 2, 4, 6, 7 of `layers`, as in their `MLP`)."""

    def __init__(self, width: int):
        super().__init__()
        mods: list[nn.Module] = []
        dims = (width, *HEAD_WIDTHS)
        for i in range(len(HEAD_WIDTHS)):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(HEAD_DROPOUTS):
                mods.append(nn.Dropout(HEAD_DROPOUTS[i]))
        self.layers = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, width) text-image features -> (B, 1) raw rewards."""
        return self.layers(x)


class ImageRewardModel(BlipPreTrainedModel):
    """BLIP ViT + cross-attending BLIP text encoder + MLP head (see module docstring).

    The config is a `BlipConfig` with extra fields `image_reward_mean`, `image_reward_std`,
    `image_reward_max_length` (defaults: the published constants)."""

    config: BlipConfig
    main_input_name = "pixel_values"

    def __init__(self, config: BlipConfig):
        super().__init__(config)
        self.vision_model = BlipVisionModel(config.vision_config)
        self.text_encoder = BlipTextModel(config.text_config, add_pooling_layer=False)
        self.mlp = ImageRewardHead(config.text_config.hidden_size)
        self.post_init()

    def features(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, S, S), input_ids / attention_mask (B, L) -> [CLS] features (B, width) float32."""
        image_embeds = self.vision_model(pixel_values=pixel_values).last_hidden_state
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask,
                                encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
        return out.last_hidden_state[:, 0, :].float()

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """Same inputs as `features` -> raw (un-normalised) rewards (B,) float32."""
        feats = self.features(pixel_values, input_ids, attention_mask)
        head_dtype = self.mlp.layers[0].weight.dtype
        return self.mlp(feats.to(head_dtype)).squeeze(-1).float()

    def reward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
               attention_mask: torch.Tensor) -> torch.Tensor:
        """Same inputs as `features` -> normalised ImageReward scores (B,) float32."""
        mean = getattr(self.config, "image_reward_mean", IMAGE_REWARD_MEAN)
        std = getattr(self.config, "image_reward_std", IMAGE_REWARD_STD)
        return (self(pixel_values, input_ids, attention_mask) - mean) / std


def load_blip_tokenizer(name_or_path, **kwargs):
    """bert-base-uncased tokenizer + BLIP's special tokens ([DEC] as bos, [ENC] additional), as their
    `init_tokenizer`. `name_or_path` may also be a tokenizer object (returned with the tokens added)."""
    if isinstance(name_or_path, (str, Path)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), **kwargs)
    else:
        tokenizer = name_or_path
    if "[DEC]" not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    if "[ENC]" not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def _strip(key: str) -> str:
    return key.removeprefix("blip.")


def map_image_reward_key(key: str) -> str | None:
    """Their key -> ours, or None for keys ImageReward does not use (ITC projections, buffers)."""
    key = _strip(key)
    if key.startswith("visual_encoder."):
        rest = key[len("visual_encoder."):]
        fixed = {"cls_token": "vision_model.embeddings.class_embedding",
                 "pos_embed": "vision_model.embeddings.position_embedding"}
        if rest in fixed:
            return fixed[rest]
        if rest.startswith("patch_embed.proj."):
            return "vision_model.embeddings.patch_embedding." + rest[len("patch_embed.proj."):]
        if rest.startswith("norm."):
            return "vision_model.post_layernorm." + rest[len("norm."):]
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", rest)
        if m and m.group(2) in _VIT_BLOCK:
            return f"vision_model.encoder.layers.{m.group(1)}.{_VIT_BLOCK[m.group(2)]}.{m.group(3)}"
        raise ValueError(f"unexpected ImageReward vision key {key!r}")
    if key.startswith("text_encoder."):
        return None if key.endswith("position_ids") or key.startswith("text_encoder.pooler.") else key
    if key.startswith("mlp.layers."):
        return key
    return None


def _read_med_config(med_config) -> dict | None:
    if med_config is None or isinstance(med_config, dict):
        return med_config
    path = Path(med_config)
    if not path.is_file():
        raise FileNotFoundError(f"ImageReward med_config not found: {med_config}")
    return json.loads(path.read_text())


def image_reward_config(state_dict: dict, med_config=None, vision_heads: int | None = None) -> BlipConfig:
    """BlipConfig for an original-layout state dict. Vision sizes come from tensor shapes (heads:
    `vision_heads`, default width // 64 = 16 for ViT-L); text sizes from `med_config` (dict or path to
    their med_config.json), else from shapes with heads = width // 64 (12 for BERT-base)."""
    sd = {_strip(k): v for k, v in state_dict.items()}
    try:
        width = sd["visual_encoder.cls_token"].shape[-1]
        patch = sd["visual_encoder.patch_embed.proj.weight"].shape[-1]
        grid = math.isqrt(sd["visual_encoder.pos_embed"].shape[1] - 1)
        inter = sd["visual_encoder.blocks.0.mlp.fc1.weight"].shape[0]
        words = sd["text_encoder.embeddings.word_embeddings.weight"]
        positions = sd["text_encoder.embeddings.position_embeddings.weight"]
        text_inter = sd["text_encoder.encoder.layer.0.intermediate.dense.weight"].shape[0]
    except KeyError as err:
        raise ValueError(f"not an ImageReward state dict: missing {err.args[0]!r}") from None
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("visual_encoder.blocks."))
    text_depth = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("text_encoder.encoder.layer."))
    vision = {"hidden_size": width, "intermediate_size": inter, "num_hidden_layers": depth,
              "num_attention_heads": vision_heads or max(1, width // 64), "patch_size": patch,
              "image_size": grid * patch, "layer_norm_eps": 1e-6, "hidden_act": "gelu"}
    text = {"vocab_size": words.shape[0], "hidden_size": words.shape[1], "num_hidden_layers": text_depth,
            "num_attention_heads": max(1, words.shape[1] // 64), "intermediate_size": text_inter,
            "max_position_embeddings": positions.shape[0], "layer_norm_eps": 1e-12, "hidden_act": "gelu",
            "pad_token_id": 0, "is_decoder": True}
    med = _read_med_config(med_config)
    if med:
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "layer_norm_eps", "hidden_act", "pad_token_id"):
            if name in med:
                text[name] = med[name]
    # BLIP's tokenizer appends [DEC] (bos) and [ENC] to bert-base-uncased: ids vocab - 2, vocab - 1
    text["bos_token_id"] = text["vocab_size"] - 2
    text["sep_token_id"] = 102 if text["vocab_size"] > 102 else None
    return BlipConfig(text_config=text, vision_config=vision, architectures=["ImageRewardModel"],
                      image_reward_mean=IMAGE_REWARD_MEAN, image_reward_std=IMAGE_REWARD_STD,
                      image_reward_max_length=IMAGE_REWARD_MAX_LENGTH)


def convert_image_reward(state_dict: dict, med_config=None, vision_heads: int | None = None
                         ) -> tuple[BlipConfig, dict[str, torch.Tensor]]:
    """Their state dict (ImageReward.pt) -> (BlipConfig, state dict of `ImageRewardModel`).
    Unused keys (vision_proj, text_proj, position_ids buffers) are dropped; a missing, unexpected or
    mis-shaped key raises a one-line error naming it."""
    config = image_reward_config(state_dict, med_config, vision_heads)
    with torch.device("meta"):
        expected = {k: v.shape for k, v in ImageRewardModel(config).state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = map_image_reward_key(key)
        if new is None:
            continue
        if new not in expected:
            raise ValueError(f"ImageReward key {key!r} has no place in the BLIP model (mapped to {new!r})")
        if tuple(value.shape) != tuple(expected[new]):
            raise ValueError(f"ImageReward key {key!r}: shape {tuple(value.shape)} != {tuple(expected[new])}")
        out[new] = value.detach().contiguous()
    missing = [k for k in expected if k not in out]
    if missing:
        raise ValueError(f"ImageReward checkpoint lacks {missing[0]!r} ({len(missing)} keys missing)")
    return config, out


def load_original_state_dict(pt_path) -> dict[str, torch.Tensor]:
    """torch.load(weights_only=True) of ImageReward.pt (a plain state dict; a {'model'|'state_dict': ...}
    wrapper is unwrapped)."""
    path = Path(pt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageReward checkpoint not found: {pt_path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise TypeError(f"{pt_path} does not hold a state dict")
    return obj


def build_image_reward(config: BlipConfig, state_dict: dict[str, torch.Tensor]) -> ImageRewardModel:
    """An eval-mode ImageRewardModel holding `state_dict` (keys as produced by `convert_image_reward`)."""
    with torch.device("meta"):
        model = ImageRewardModel(config)
    model.load_state_dict(state_dict, strict=True, assign=True)
    # the one non-persistent buffer is not in the state dict: rebuild it off the meta device
    positions = config.text_config.max_position_embeddings
    model.text_encoder.embeddings.position_ids = torch.arange(positions).expand((1, -1))
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"ImageReward model tensor {left[0]!r} was not loaded")
    return model.eval()


def convert_image_reward_checkpoint(pt_path, out_dir, med_config=None, tokenizer=None,
                                    vision_heads: int | None = None) -> Path:
    """ImageReward.pt (+ med_config.json, found beside it when not given) -> a folder loadable by
    `ImageRewardModel.from_pretrained` and the `image_reward_score` scorer: config.json,
    model.safetensors and, when `tokenizer` (a bert-base-uncased folder / hub id / tokenizer object)
    is given, the tokenizer files with BLIP's [DEC]/[ENC] tokens."""
    from mirokit.atomic import save_safetensors_atomic

    pt_path = Path(pt_path)
    if med_config is None and (pt_path.parent / "med_config.json").is_file():
        med_config = pt_path.parent / "med_config.json"
    config, state = convert_image_reward(load_original_state_dict(pt_path), med_config, vision_heads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors_atomic(out / "model.safetensors", {k: v.contiguous() for k, v in state.items()}, {"format": "pt"})
    config.save_pretrained(out)
    if tokenizer is not None:
        load_blip_tokenizer(tokenizer).save_pretrained(out)
    return out
