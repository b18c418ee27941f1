"""The shapes world as a mirokit plugin: importing this registers its components.

- reward scorers `world_alignment`, `world_quality`, `world_composition`, `world_brightness` (mirokit.world.rewards);
- the data source `world` (mirokit.world.source);
- the prompt-set metric `shapes` (mirokit.world.metrics);
- the captioner `world_detector` (mirokit.world.captioner);
- the image space `world_ae`: latents of the world autoencoder (mirokit.world.ae_space);
- the feature extractors `world_ae`, `world_scene` of `mirokit eval diversity` (mirokit.world.diversity);
- the commands `mirokit demo`, `mirokit world render | generate | autoencoder`, `mirokit eval shapes`
  (mirokit.world.commands).

Declared in pyproject.toml as the `mirokit.plugins` entry point `world`; no core package imports it.
"""

from mirokit.world import (  # noqa: F401  (registrations)
    ae_space,
    captioner,
    commands,
    diversity,  # feature extractors world_ae, world_scene
    metrics,
    rewards,
    source,
)
