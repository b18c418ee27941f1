"""The image-trunk contract (`Backbone`), the base of every trunk's config and the backbone registry.

A backbone is the network between the (scaled) noisy input and the raw output; the reward/text
conditioner in front of it is shared by every backbone. To add one, write one module in
`mirokit/models/` (or any module named in MIROKIT_PLUGINS / a `mirokit.plugins` entry point)::

    @dataclass(kw_only=True)
    class MyConfig(BackboneConfig):
        width: int = 64
        \"\"\"feature width\"\"\"

    @BACKBONES.register("mine", config=MyConfig, description="...")
    class MyTrunk(nn.Module):
        def __init__(self, cfg: MyConfig, *, channels: int, image_size: int): ...
        # + the members of `Backbone` below

and select it with `model.backbone: {kind: mine, width: 96}`. The generator Xavier-initialises
every Linear/Conv2d of the network, then calls `reset_self_conditioning()`.

Optional members, for a trunk that is a pretrained model of its own (the `diffusers` backbone,
mirokit/models/diffusers_backbone.py):
- `make_conditioner(reward_keys, text_dim, conditioning)` -> the conditioner to use instead of MIRO's
  `RewardTextConditioner` (with `num_tokens`, `flops_per_image`, `blocks` and the call
  `(time, text, text_mask, rewards)`); the network is then not Xavier-initialised (weights stay as built);
- `parametrisation` (e.g. "rectified_flow"): the one `model.parametrisation` must name;
- `has_self_conditioning = False`: the training loss makes no extra self-conditioning call;
- `saved_config()` -> the backbone section a saved model folder writes (instead of the config as given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor, nn

from mirokit.config import KindConfig
from mirokit.registry import Registry

BACKBONES: Registry = Registry("backbone", "mirokit.models")
"""kind -> trunk class, called as `cls(cfg, channels=C, image_size=S)`."""


@dataclass(kw_only=True)
class BackboneConfig(KindConfig):
    """Config of an image trunk; `kind` selects the registered class (rin, unet, ...)."""

    registry: ClassVar[Any] = BACKBONES


@runtime_checkable
class Backbone(Protocol):
    """What the generator and the trainer need from an image trunk."""

    cond_width: int
    """width W of the conditioning tokens and time embedding the trunk reads"""

    def forward(self, x: Tensor, cond: Any, self_cond: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x: (B, C, H, W) scaled noisy input; cond: `Conditioning` (time (B, W), tokens (B, T, W), mask
        (B, T)); self_cond: the state returned by a previous call (None = first call).
        Returns (output (B, C, H, W), state to pass back as `self_cond`, or None if the trunk does not
        self-condition)."""
        ...

    def reset_self_conditioning(self) -> None:
        """Make the self-conditioning input a no-op at initialisation (called after Xavier init)."""
        ...

    def flops_per_image(self, num_cond_tokens: int) -> int:
        """Forward FLOPs for one image (multiply-add = 2) given T conditioning tokens."""
        ...

    def blocks(self) -> list[nn.Module]:
        """The trunk's repeated units in forward order: the granularity at which training shards
        (FSDP2), checkpoints activations and compiles. Every parameter not in a block stays in
        the root unit."""
        ...


def check_backbone(trunk: nn.Module, kind: str) -> nn.Module:
    """Raise a one-line TypeError if `trunk` lacks a member of the Backbone contract; returns it."""
    missing = [name for name in ("cond_width", "forward", "reset_self_conditioning", "flops_per_image", "blocks")
               if not hasattr(trunk, name)]
    if missing:
        raise TypeError(f"backbone {kind!r} ({type(trunk).__name__}) does not implement {', '.join(missing)} "
                        "of mirokit.models.backbone.Backbone")
    return trunk
