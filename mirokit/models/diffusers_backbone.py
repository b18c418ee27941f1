"""The `diffusers` backbone: a diffusers text-to-image transformer as MIRO's trunk, with reward tokens.

    model:
      parametrisation: rectified_flow        # the transformer's own time convention (mirokit.flow.parametrisation)
      backbone: {kind: diffusers, name_or_path: <folder | OWNER/NAME>, subfolder: transformer, family: auto,
                 pretrained: true}

The transformer is built from its config (`name_or_path/subfolder/config.json`, or `transformer_config` given
inline, e.g. for tiny models in tests) and, with `pretrained: true`, its weights are loaded strictly (a config
that does not fit them is a one-line error). MIRO's conditioning is added *in the transformer's own text
sequence*: each reward has its own embedder (Fourier features -> MLP -> Linear to the text width) plus a learned
position row, and its token is appended to the text tokens `encoder_hidden_states` before the transformer's own
caption projection; a missing or dropped reward's token is masked out of attention (Sana: the cross-attention mask
`encoder_attention_mask`; SD3: a key mask in its joint attention). So with every reward missing the wrapped
model computes what the bare transformer computes (tests/models/test_diffusers_backbone.py measures it), rows are
independent of each other, and a fine-tune starts from the pretrained model. The conditioner's registers and
mixer (`model.conditioning`) are not used.

One file per family holds its call: `diffusers_sana.py` (SanaTransformer2DModel) and `diffusers_sd3.py`
(SD3Transformer2DModel). A model folder saved by mirokit writes the transformer's whole config into
`backbone.transformer_config` with `pretrained: false` (`saved_config`): it is rebuilt from its own files.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mirokit.config import to_dict
from mirokit.models.backbone import BACKBONES, BackboneConfig
from mirokit.models.conditioning import ConditioningConfig, _trunc_normal_param
from mirokit.models.embedders import ScalarEmbedder
from mirokit.models.layers import linear_flops, xavier_init_
from mirokit.pretrained import load_weights, read_json, read_weights

FAMILIES: dict[str, tuple[str, str, str]] = {
    "sana": ("SanaTransformer2DModel", "mirokit.models.diffusers_sana", "SanaTrunk"),
    "sd3": ("SD3Transformer2DModel", "mirokit.models.diffusers_sd3", "SD3Trunk"),
}
"""family -> (the diffusers class it wraps, the module and class of its trunk)"""

WEIGHTS = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX = "diffusion_pytorch_model.safetensors.index.json"
WHERE = "model.backbone (diffusers)"


@dataclass(kw_only=True)
class DiffusersConfig(BackboneConfig):
    """A diffusers text-to-image transformer (Sana, SD3) with reward tokens; model.parametrisation: rectified_flow."""

    name_or_path: str = ""
    """a diffusers pipeline (or transformer) folder, or a hub id OWNER/NAME; may stay "" with transformer_config"""
    subfolder: str = "transformer"
    """the transformer's folder inside name_or_path ("" = name_or_path itself)"""
    family: str = "auto"
    """auto (from the config's _class_name) | sana | sd3"""
    pretrained: bool = False
    """load the transformer's weights from name_or_path (false: diffusers' initialisation of its config)"""
    transformer_config: dict = field(default_factory=dict)
    """the transformer's config (diffusers config.json keys); when set, used instead of name_or_path's"""
    reward_dim: int = 256
    """width of each reward's Fourier+MLP embedder before its Linear to the text width (divisible by 4)"""

    def __post_init__(self):
        if self.family != "auto" and self.family not in FAMILIES:
            raise ValueError(f"family must be auto or one of {', '.join(FAMILIES)}, got {self.family!r}")
        if not isinstance(self.transformer_config, dict):
            raise ValueError(f"transformer_config must be a mapping, got {type(self.transformer_config).__name__}")
        if self.reward_dim < 4 or self.reward_dim % 4:
            raise ValueError(f"reward_dim must be a positive multiple of 4, got {self.reward_dim}")


@dataclass
class TokenConditioning:
    """What a diffusers trunk reads: timestep (B,) in the transformer's own scale; text (B, L, D) and text_mask
    (B, L) bool as the text encoder gave them; reward_tokens (B, K, D) in the text width D; reward_mask (B, K)
    bool, False for a missing or dropped reward (its token is masked out of attention)."""

    timestep: Tensor
    text: Tensor
    text_mask: Tensor
    reward_tokens: Tensor
    reward_mask: Tensor


class RewardTokenEmbedder(nn.Module):
    """One reward's embedder: Fourier features + MLP (`ScalarEmbedder`, width `dim`) -> Linear to the text width."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.embed = ScalarEmbedder(dim // 4)
        self.proj = nn.Linear(dim, width)

    def flops(self) -> int:
        """Forward FLOPs for one scalar."""
        return self.embed.flops() + linear_flops(self.proj, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B,) reward values in [0, 1] -> (B, width)."""
        return self.proj(self.embed(x))


class RewardTokens(nn.Module):
    """The conditioner of a diffusers trunk: K reward tokens of the text width, passed on beside the text tokens.

    Parameter names follow `RewardTextConditioner` (`reward_embedders.<key>.*`, `reward_position`), so
    `train.init_from` matches a parent's reward keys by name here too.
    """

    def __init__(self, reward_keys: list[str], width: int, dim: int, cfg: ConditioningConfig):
        super().__init__()
        if len(set(reward_keys)) != len(reward_keys):
            raise ValueError(f"duplicate reward keys in {reward_keys}")
        unknown = [k for k in cfg.masked_when_missing if k not in reward_keys]
        if unknown:
            raise ValueError(f"conditioning.masked_when_missing names {unknown[0]!r}, which is not one of the reward "
                             f"keys {list(reward_keys)}")
        self.reward_keys = list(reward_keys)
        self.reward_embedders = nn.ModuleDict({k: RewardTokenEmbedder(dim, width) for k in reward_keys})
        self.reward_position = _trunc_normal_param(len(reward_keys), width) if reward_keys else None
        xavier_init_(self.reward_embedders)
        self.width = width

    def num_tokens(self, text_len: int) -> int:
        """Conditioning tokens the transformer reads: L text + K reward tokens."""
        return text_len + len(self.reward_keys)

    def flops_per_image(self, text_len: int) -> int:
        """Forward FLOPs of the reward embedders for one sample (the text tokens pass through untouched)."""
        return sum(e.flops() for e in self.reward_embedders.values())

    def blocks(self) -> list[nn.Module]:
        """No repeated units of its own (it stays in the root unit)."""
        return []

    def forward(self, time: Tensor, text: Tensor, text_mask: Tensor, rewards: Tensor | None) -> TokenConditioning:
        """time: (B,) the transformer's timestep; text: (B, L, D); text_mask: (B, L); rewards: (B, K) in [0, 1],
        NaN = missing (None when K = 0) -> TokenConditioning."""
        b, k = text.shape[0], len(self.reward_keys)
        if k and (rewards is None or rewards.shape != (b, k)):
            got = None if rewards is None else tuple(rewards.shape)
            raise ValueError(f"rewards must have shape ({b}, {k}) for keys {self.reward_keys}, got {got}")
        if not k:
            tokens = text.new_zeros(b, 0, self.width)
            return TokenConditioning(time, text, text_mask.bool(), tokens, text_mask.new_zeros(b, 0, dtype=torch.bool))
        present = ~torch.isnan(rewards)
        values = torch.nan_to_num(rewards.float(), nan=0.0)
        emb = torch.stack([self.reward_embedders[key](values[:, i]) for i, key in enumerate(self.reward_keys)], 1)
        tokens = emb * present.unsqueeze(-1).to(emb.dtype) + self.reward_position.unsqueeze(0).to(emb.dtype)
        return TokenConditioning(time, text, text_mask.bool(), tokens, present.to(text_mask.device))


class DiffusersTrunk(nn.Module):
    """The Backbone contract around one diffusers transformer (`self.transformer`); a family subclass sets the
    class it wraps and implements `run` (its call signature)."""

    family: ClassVar[str]
    class_name: ClassVar[str]
    text_width_key: ClassVar[str]
    """the config key giving the width of the text tokens the transformer reads"""
    parametrisation = "rectified_flow"
    has_self_conditioning = False

    def __init__(self, cfg: DiffusersConfig, transformer: nn.Module, *, source: str, channels: int, image_size: int):
        super().__init__()
        self.cfg = cfg
        self.source = source
        self.transformer = transformer
        config = transformer.config
        self.cond_width = int(config[self.text_width_key])
        self.channels, self.image_size = channels, image_size
        where = f"{WHERE}: the {self.class_name} of {source}"
        if config["in_channels"] != channels:
            raise ValueError(f"{where} takes in_channels={config['in_channels']}, but model.image_channels={channels}")
        out = config.get("out_channels") or config["in_channels"]
        if out != channels:
            raise ValueError(f"{where} gives out_channels={out}, not its in_channels={channels}")
        if image_size % config["patch_size"]:
            raise ValueError(f"{where} has patch_size={config['patch_size']}, which does not divide "
                             f"model.image_size={image_size}")

    def make_conditioner(self, reward_keys: list[str], text_dim: int, conditioning: ConditioningConfig) -> RewardTokens:
        """The reward-token conditioner (replaces MIRO's mixer); text_dim must be the transformer's text width."""
        if text_dim != self.cond_width:
            raise ValueError(f"{WHERE}: the {self.class_name} of {self.source} reads {self.cond_width}-wide text "
                             f"tokens ({self.text_width_key}), but the text encoder gives {text_dim} (model.text_dim)")
        return RewardTokens(reward_keys, self.cond_width, self.cfg.reward_dim, conditioning)

    @property
    def dtype(self) -> torch.dtype:
        """The transformer's parameter dtype (its inputs are cast to it)."""
        return next(self.transformer.parameters()).dtype

    def run(self, x: Tensor, cond: TokenConditioning) -> Tensor:
        """x: (B, C, H, W) noisy latents -> (B, C, H, W) the transformer's prediction (eps - x0)."""
        raise NotImplementedError

    def forward(self, x: Tensor, cond: TokenConditioning, self_cond: Tensor | None = None) -> tuple[Tensor, None]:
        """x: (B, C, H, W); cond: TokenConditioning; self_cond: ignored -> ((B, C, H, W), None): no state."""
        return self.run(x, cond), None

    def reset_self_conditioning(self) -> None:
        """Nothing to reset: the transformer is not self-conditioned."""

    def blocks(self) -> list[nn.Module]:
        """The transformer's blocks (`transformer_blocks`)."""
        return list(self.transformer.transformer_blocks)

    def image_tokens(self) -> int:
        """Patches per image N = (image_size / patch_size)^2."""
        return (self.image_size // self.transformer.config["patch_size"]) ** 2

    def attention_flops(self, num_cond_tokens: int) -> int:
        """Attention-score and value FLOPs per image (the family's attention layout)."""
        raise NotImplementedError

    def flops_per_image(self, num_cond_tokens: int) -> int:
        """Forward FLOPs per image, an estimate for the MFU metric: every block weight applied to each image
        token (2 FLOPs per multiply-add), the text projection to the T conditioning tokens, plus attention."""
        weights = sum(p.numel() for block in self.blocks() for p in block.parameters() if p.ndim >= 2)
        return 2 * weights * self.image_tokens() + 2 * self.cond_width * self.inner_dim() * num_cond_tokens \
            + self.attention_flops(num_cond_tokens)

    def inner_dim(self) -> int:
        """The transformer's width (heads * head dim)."""
        config = self.transformer.config
        return int(config["num_attention_heads"] * config["attention_head_dim"])

    def saved_config(self) -> dict:
        """The backbone section a saved model folder writes: the transformer's whole config inline, the family
        resolved, `pretrained: false` (the weights are in the folder's model.safetensors)."""
        config = {k: v for k, v in dict(self.transformer.config).items() if not k.startswith("_")}
        full = replace(self.cfg, family=self.family, pretrained=False,
                       transformer_config=json.loads(json.dumps({"_class_name": self.class_name, **config})))
        return to_dict(full)


def transformer_folder(cfg: DiffusersConfig) -> Path:
    """The transformer's local folder (name_or_path/subfolder; a hub id is downloaded, that subfolder only)."""
    from mirokit.sources import model_folder

    if not cfg.name_or_path:
        raise ValueError(f"{WHERE}: set name_or_path (a folder or hub id) or transformer_config")
    try:
        return model_folder(cfg.name_or_path, cfg.subfolder or None)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{WHERE}: {err}") from None


def transformer_config(cfg: DiffusersConfig) -> tuple[dict, str]:
    """(the transformer's config dict, where it comes from) — `transformer_config`, else the folder's config.json."""
    if cfg.transformer_config:
        return dict(cfg.transformer_config), "model.backbone.transformer_config"
    folder = transformer_folder(cfg)
    config = read_json(folder / "config.json", f"{WHERE}: transformer config")
    if not isinstance(config, dict):
        raise ValueError(f"{WHERE}: {folder / 'config.json'} is not a JSON object")
    return config, str(folder)


def family_of(cfg: DiffusersConfig, config: dict, source: str) -> str:
    """The family to use: `cfg.family`, checked against the config's `_class_name`, or found from it (auto)."""
    class_name = config.get("_class_name")
    known = ", ".join(f"{name}: {spec[0]}" for name, spec in FAMILIES.items())
    if cfg.family == "auto":
        found = [name for name, spec in FAMILIES.items() if spec[0] == class_name]
        if class_name is None:
            raise ValueError(f"{WHERE}: {source} names no _class_name; set model.backbone.family ({known})")
        if not found:
            raise ValueError(f"{WHERE}: {source} holds a {class_name}, which no family reads ({known})")
        return found[0]
    expected = FAMILIES[cfg.family][0]
    if class_name is not None and class_name != expected:
        raise ValueError(f"{WHERE}: family {cfg.family!r} reads {expected}, but {source} holds a {class_name}")
    return cfg.family


def build_transformer(class_name: str, config: dict, source: str, *, strict: bool) -> nn.Module:
    """A diffusers `class_name` from its config dict (keys starting with `_` are metadata); with `strict`, a key
    the class does not take is a one-line error (a folder's config keeps diffusers' own tolerance)."""
    import diffusers

    cls = getattr(diffusers, class_name)
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - accepted)
    if strict and unknown:
        raise ValueError(f"{WHERE}: {source} has key(s) {', '.join(unknown)} that {class_name} does not take")
    try:
        return cls.from_config({k: v for k, v in kwargs.items() if k in accepted})
    except (TypeError, ValueError, AssertionError) as err:
        from mirokit.sources import one_line

        raise ValueError(f"{WHERE}: cannot build {class_name} from {source}: {one_line(err)}") from None


def read_transformer_weights(folder: Path) -> dict[str, Tensor]:
    """The transformer's tensors in `folder`: diffusion_pytorch_model.safetensors, or the shards its index names."""
    if (folder / WEIGHTS).is_file():
        return read_weights(folder / WEIGHTS)
    if (folder / WEIGHTS_INDEX).is_file():
        index = read_json(folder / WEIGHTS_INDEX, "weights index")
        state: dict[str, Tensor] = {}
        for name in sorted(set((index.get("weight_map") or {}).values())):
            state.update(read_weights(folder / name))
        return state
    raise FileNotFoundError(f"{WHERE}: pretrained: true, but {folder} holds no {WEIGHTS} (nor {WEIGHTS_INDEX})")


@BACKBONES.register("diffusers", config=DiffusersConfig,
                    description="a diffusers text-to-image transformer (Sana, SD3) with reward tokens")
def diffusers_backbone(cfg: DiffusersConfig, *, channels: int, image_size: int) -> DiffusersTrunk:
    """Build the family's trunk around the transformer of `cfg` (weights loaded when `cfg.pretrained`)."""
    config, source = transformer_config(cfg)
    family = family_of(cfg, config, source)
    class_name, module, trunk_class = FAMILIES[family]
    transformer = build_transformer(class_name, config, source, strict=bool(cfg.transformer_config))
    if cfg.pretrained:
        folder = transformer_folder(cfg)
        load_weights(transformer, read_transformer_weights(folder), folder)
    trunk: Any = getattr(importlib.import_module(module), trunk_class)
    return trunk(cfg, transformer, source=source, channels=channels, image_size=image_size)
