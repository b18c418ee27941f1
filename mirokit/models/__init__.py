"""Generator networks: reward/text conditioning, RIN and UNet trunks, preconditioning."""

from mirokit.models.backbone import BACKBONES, Backbone, BackboneConfig
from mirokit.models.conditioning import ConditioningConfig, RewardTextConditioner
from mirokit.models.generator import (
    GeneratorConfig,
    GeneratorOutput,
    MiroGenerator,
    cpu_tiny_rin_config,
    official_rin_config,
)
from mirokit.models.rin import RINConfig

__all__ = [
    "BACKBONES", "Backbone", "BackboneConfig", "ConditioningConfig", "RewardTextConditioner", "GeneratorConfig",
    "GeneratorOutput", "MiroGenerator",
    "RINConfig", "cpu_tiny_rin_config", "official_rin_config",
]
