"""The MIRO generator: conditioner + image trunk + its parametrisation, HF-style persistence.

`MiroGenerator(y, gamma, text=..., text_mask=..., rewards=..., self_cond=...)` returns the
predicted velocity `eps - x0` and the self-conditioning state. Submodules are named `network`
and `preconditioning` like the official checkpoints. `GeneratorConfig.parametrisation` says how the network sits
on the flow path (mirokit.flow.parametrisation): `edm_precond` (EDM-style scalings, the default) or
`rectified_flow` (a diffusers flow-matching transformer's own convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from mirokit.flow.parametrisation import check_parametrisation, parametrisation
from mirokit.models.backbone import BACKBONES, BackboneConfig, check_backbone
from mirokit.models.conditioning import ConditioningConfig, RewardTextConditioner
from mirokit.models.embedders import FourierFeatures
from mirokit.models.layers import linear_flops, xavier_init_
from mirokit.models.rin import RINConfig
from mirokit.pretrained import PretrainedMixin


@dataclass(kw_only=True)
class GeneratorConfig:
    """Everything needed to rebuild a generator; stored as config.json in checkpoints."""

    image_channels: int = 4
    """channels of the modelled space (4 for SDXL latents, 3 for pixels)"""
    image_size: int = 32
    """side of the modelled space in its own units (latent or pixel)"""
    reward_keys: list[str] = field(default_factory=list)
    """names of the reward scalars the model is conditioned on, in order"""
    text_dim: int = 2048
    """width of the incoming text-token embeddings (2048 for FLAN-T5-XL)"""
    backbone: BackboneConfig = field(default_factory=RINConfig)
    """image trunk: {kind: rin | unet | any registered backbone, ...its settings}"""
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    """reward/text conditioning mixer settings"""
    sigma_data: float = 0.5
    """data standard deviation used by the preconditioning"""
    learned_uncertainty: bool = True
    """learn a per-signal-level log-variance u(gamma) for loss weighting mse/e^u + u (EDM2); edm_precond only"""
    logvar_channels: int = 128
    """Fourier channels of the log-variance head"""
    parametrisation: str = "edm_precond"
    """how the network sits on the flow path: edm_precond (input/output scalings, time = gamma, learned log-variance;
    RIN, UNet) | rectified_flow (a diffusers transformer's own: time = (1 - gamma) * 1000, no scalings, plain MSE)"""

    def __post_init__(self):
        check_parametrisation(self.parametrisation)


def upgrade_config_dict(data: dict) -> dict:
    """A config.json of format 1 (`backbone: "rin"` beside `rin:`/`unet:` sections) -> the current layout."""
    if isinstance(data.get("backbone"), str):
        data = dict(data)
        kind = data.pop("backbone")
        sections = {name: data.pop(name, None) for name in ("rin", "unet")}
        data["backbone"] = {"kind": kind, **(sections.get(kind) or {})}
    return data


class GeneratorOutput(NamedTuple):
    """velocity: (B, C, H, W) predicted eps - x0; self_cond: state to feed into the next call;
    logvar: (B,) learned log-variance u(gamma) for loss weighting (zeros when disabled)."""

    velocity: Tensor
    self_cond: Tensor
    logvar: Tensor


class MiroNetwork(nn.Module):
    """Conditioner + trunk; maps the network input to the raw network output F.

    The conditioner is MIRO's `RewardTextConditioner` (and the whole network is Xavier-initialised), unless the
    trunk brings its own: a trunk with `make_conditioner(reward_keys, text_dim, conditioning)` (a pretrained
    diffusers transformer) gets that one, and neither is re-initialised here.
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        kind = cfg.backbone.kind
        trunk = BACKBONES.build(cfg.backbone, channels=cfg.image_channels, image_size=cfg.image_size)
        self.trunk = check_backbone(trunk, kind)
        make = getattr(self.trunk, "make_conditioner", None)
        if make is None:
            self.conditioner = RewardTextConditioner(self.trunk.cond_width, cfg.reward_keys, cfg.text_dim,
                                                     cfg.conditioning)
            xavier_init_(self)
        else:
            self.conditioner = make(cfg.reward_keys, cfg.text_dim, cfg.conditioning)
        self.trunk.reset_self_conditioning()

    def forward(self, x: Tensor, time: Tensor, text: Tensor, text_mask: Tensor, rewards: Tensor | None,
                self_cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """x: (B, C, H, W) network input; time: (B,) the parametrisation's time value (gamma for edm_precond) ->
        ((B, C, H, W), self-conditioning state or None)."""
        cond = self.conditioner(time, text, text_mask, rewards)
        return self.trunk(x, cond, self_cond)

    def blocks(self) -> list[nn.Module]:
        """Units for sharding / activation checkpointing / compile: the conditioner's, then the trunk's blocks."""
        return [*self.conditioner.blocks(), *self.trunk.blocks()]


class Preconditioning(nn.Module):
    """Holds the learned log-variance head u(gamma) (Fourier features -> Linear), when the parametrisation learns
    one (edm_precond with learned_uncertainty)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.logvar_proj = None
        if parametrisation(cfg.parametrisation, learned_uncertainty=cfg.learned_uncertainty).learns_logvar:
            self.logvar_proj = nn.Sequential(FourierFeatures(cfg.logvar_channels), nn.Linear(cfg.logvar_channels, 1))

    def logvar(self, gamma: Tensor) -> Tensor:
        """gamma: (B,) -> (B,) learned log-variance (zeros when uncertainty weighting is off)."""
        if self.logvar_proj is None:
            return torch.zeros_like(gamma, dtype=torch.float32)
        features, head = self.logvar_proj
        # a fresh tensor, not a view of the projection: FSDP2 hooks the root module's outputs
        return head(features(gamma.reshape(-1)).to(head.weight.dtype))[:, 0].float().clone()


class MiroGenerator(PretrainedMixin, nn.Module):
    """Reward- and text-conditioned velocity model with preconditioning.

    Call: `model(y, gamma, text=(B,L,Dt), text_mask=(B,L), rewards=(B,K), self_cond=state|None)`.
    `rewards` holds values in [0, 1]; NaN marks a missing/dropped reward.
    Persistence: `save_pretrained(dir, state_dict=None)` / `from_pretrained(dir)` (mirokit.pretrained).
    """

    config_class = GeneratorConfig
    pretrained_name = "generator"

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.config = cfg
        self.parametrisation = parametrisation(cfg.parametrisation, sigma_data=cfg.sigma_data,
                                               learned_uncertainty=cfg.learned_uncertainty)
        self.network = MiroNetwork(cfg)
        needed = getattr(self.network.trunk, "parametrisation", None)
        if needed is not None and needed != cfg.parametrisation:
            raise ValueError(f"model.parametrisation is {cfg.parametrisation!r}, but the {cfg.backbone.kind} backbone "
                             f"predicts in the {needed!r} convention: set model.parametrisation={needed}")
        self.preconditioning = Preconditioning(cfg)

    @property
    def reward_keys(self) -> list[str]:
        """Names of the reward scalars the model is conditioned on, in order (K of them)."""
        return list(self.config.reward_keys)

    @property
    def has_self_conditioning(self) -> bool:
        """Whether the trunk keeps a self-conditioning state (False for a diffusers transformer: the training loss
        then makes no extra call)."""
        return bool(getattr(self.network.trunk, "has_self_conditioning", True))

    def blocks(self) -> list[nn.Module]:
        """The network's repeated units (see `Backbone.blocks`), conditioner mixer first."""
        return self.network.blocks()

    def config_dict(self) -> dict:
        """config.json: the config as a dict, with the backbone's section as the trunk resolves it when it offers
        `saved_config()` (a diffusers backbone writes its whole transformer config, weights not re-read: the
        folder is self-contained)."""
        data = super().config_dict()
        saved = getattr(self.network.trunk, "saved_config", None)
        if saved is not None:
            data["backbone"] = saved()
        return data

    def flops_per_image(self, text_len: int) -> int:
        """Forward FLOPs for one image with L text tokens: conditioner + trunk + log-variance head."""
        cond = self.network.conditioner
        total = cond.flops_per_image(text_len) + self.network.trunk.flops_per_image(cond.num_tokens(text_len))
        if self.preconditioning.logvar_proj is not None:
            total += linear_flops(self.preconditioning.logvar_proj[1], 1)
        return total

    def forward(self, y: Tensor, gamma: Tensor, *, text: Tensor, text_mask: Tensor,
                rewards: Tensor | None = None, self_cond: Tensor | None = None) -> GeneratorOutput:
        """y: (B, C, H, W) noisy sample at signal level gamma: (B,) -> GeneratorOutput."""
        gamma = gamma.reshape(-1)
        level = gamma.to(y.dtype)
        param = self.parametrisation
        out, state = self.network(param.network_input(y, level), param.network_time(gamma, y.dtype), text,
                                  text_mask, rewards, self_cond)
        return GeneratorOutput(param.velocity(out), state, self.logvar(level))

    def logvar(self, gamma: Tensor) -> Tensor:
        """gamma: (B,) -> (B,) learned log-variance u(gamma) for the loss weighting."""
        return self.preconditioning.logvar(gamma)

    def to_dtype(self, dtype: torch.dtype) -> MiroGenerator:
        """Cast the weights to `dtype` (e.g. torch.bfloat16 for inference); the random Fourier frequencies and
        phases of the signal-level and target embeddings stay float32 (their rounding would move every
        embedding). Returns self."""
        self.to(dtype)
        for module in self.modules():
            if isinstance(module, FourierFeatures):
                module.float()
        return self

    def rewards_tensor(self, values: dict[str, float | None], batch_size: int, default: float,
                       device: torch.device | str = "cpu") -> Tensor:
        """{key: value} -> (batch_size, K); keys not given take `default`; None/NaN = missing.

        An unknown key raises ValueError listing the model's keys.
        """
        unknown = [k for k in values if k not in self.config.reward_keys]
        if unknown:
            known = ", ".join(self.config.reward_keys) or "(none: this model has no reward conditioning)"
            raise ValueError(f"unknown reward key {unknown[0]!r}; this model knows: {known}")
        row = [float("nan") if values.get(k, default) is None else float(values.get(k, default))
               for k in self.config.reward_keys]
        return torch.tensor(row, dtype=torch.float32, device=device).expand(batch_size, -1).clone()

    @classmethod
    def config_from_dict(cls, data: dict, source) -> GeneratorConfig:
        """config.json -> GeneratorConfig; a format-1 file (`backbone: "rin"` beside a `rin:` section) is upgraded."""
        return super().config_from_dict(upgrade_config_dict(data) if isinstance(data, dict) else data, source)


def architecture_only(cfg: GeneratorConfig) -> GeneratorConfig:
    """`cfg` with a backbone that loads no pretrained weights (`pretrained: false` where the backbone has that
    setting): for a generator whose weights are loaded right after (exports, checkpoints, validation)."""
    if getattr(cfg.backbone, "pretrained", False):
        return replace(cfg, backbone=replace(cfg.backbone, pretrained=False))
    return cfg


def official_rin_config(reward_keys: list[str]) -> GeneratorConfig:
    """The official ~360M RIN on 4x32x32 SDXL latents with FLAN-T5-XL (2048-d) text tokens."""
    return GeneratorConfig(image_channels=4, image_size=32, reward_keys=list(reward_keys), text_dim=2048,
                           backbone=RINConfig())


def cpu_tiny_rin_config(reward_keys: list[str], text_dim: int = 64) -> GeneratorConfig:
    """A ~3M-parameter RIN on 3x32x32 pixels for CPU runs and tests."""
    return GeneratorConfig(
        image_channels=3, image_size=32, reward_keys=list(reward_keys), text_dim=text_dim,
        backbone=RINConfig(patch_size=2, data_dim=64, latents_dim=128, num_latents=64, num_blocks=3,
                      num_processing_layers=2, read_write_heads=4, compute_heads=4, hidden_multiple=32),
        conditioning=ConditioningConfig(num_registers=4, mixer_layers=2, mixer_heads=4),
        logvar_channels=32,
    )
