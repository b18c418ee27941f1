"""Reward targets against the models that take them, and the settings a model samples with.

`settings_for(explicit, preset, model_defaults, reward_keys)` is the one place that turns what a user asked
(explicit partial settings, a preset name or file) into the `SamplingSettings` one model samples with: the
settings are resolved (`mirokit.sampling.resolve`) and targets for reward keys the model lacks are dropped, after
checking that every asked key is known to at least one of the models compared.
"""

from __future__ import annotations

from collections.abc import Mapping

from mirokit.sampling.presets import load_preset
from mirokit.sampling.settings import SamplingSettings, resolve


def targets_for(reward_keys: list[str], targets: Mapping) -> dict:
    """The targets a model with `reward_keys` can take: keys it does not know are dropped (a reward-free
    baseline ignores every target); callers check with `check_targets_known` that each key is known somewhere."""
    return {k: v for k, v in targets.items() if k in reward_keys}


def check_targets_known(targets: Mapping, keys_by_model: Mapping[str, list[str]], flag: str = "--reward") -> None:
    """A one-line ValueError if a target key is known to none of the models ({model name: its reward keys})."""
    known = sorted({k for keys in keys_by_model.values() for k in keys})
    unknown = [key for key in targets if key not in known]
    if unknown:
        raise ValueError(f"unknown reward key {unknown[0]!r} in {flag}; the models know: "
                         f"{', '.join(known) or '(none)'}")


def settings_for(explicit: Mapping | None, preset: str | None, model_defaults: Mapping | None,
                 reward_keys: list[str], keys_by_model: Mapping[str, list[str]] | None = None) -> SamplingSettings:
    """Explicit partial settings > `preset` (name or JSON file) > the model's defaults -> the SamplingSettings a
    model with `reward_keys` samples with (targets it lacks dropped). `keys_by_model` (every compared model's
    keys; default: this model's) decides which target keys are unknown (a one-line ValueError)."""
    settings = resolve(explicit, load_preset(preset), model_defaults)
    keys_by_model = keys_by_model if keys_by_model is not None else {"model": list(reward_keys)}
    check_targets_known(settings.rewards, keys_by_model, "--reward")
    check_targets_known(settings.negative_rewards, keys_by_model, "--negative-reward")
    return settings.replace(rewards=targets_for(reward_keys, settings.rewards),
                            negative_rewards=targets_for(reward_keys, settings.negative_rewards))


def settings_record(settings: SamplingSettings, preset: str | None) -> dict:
    """A JSON record of every setting and the preset named (settings.json, summaries)."""
    return {"preset": preset, **settings.to_json()}
