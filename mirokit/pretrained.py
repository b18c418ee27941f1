"""One save/load for every mirokit model: `config.json` + `model.safetensors` (the role of diffusers' ModelMixin).

A model class mixes in `PretrainedMixin`, keeps its config dataclass as `self.config` and names that class as
`config_class`; then

    model.save_pretrained(folder)                  # config.json + model.safetensors
    model.save_pretrained(folder, state_dict=ema)  # another state dict (e.g. EMA weights); the live one untouched
    Model.from_pretrained(folder, device="cpu")    # rebuild from config.json, load the weights strictly

A folder that is missing, lacks a file, holds malformed JSON or a config with unknown keys, or weights that do
not match the config (missing, unexpected or mis-shaped tensors) is a one-line error naming the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from mirokit.atomic import SOLE_WRITER, save_safetensors_atomic, write_json_atomic
from mirokit.config import ConfigError, from_dict, to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

M = TypeVar("M", bound="PretrainedMixin")


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON (parents created; atomically, one writer per folder); returns the path."""
    return write_json_atomic(path, data, SOLE_WRITER)


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file; a missing file is a FileNotFoundError, bad JSON a ConfigError (one line each)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err})") from None


def save_weights(state_dict: dict[str, Tensor], path: str | Path) -> Path:
    """Write name -> tensor as safetensors (detached, contiguous, on CPU; parents created; atomically, one writer
    per folder); returns the path."""
    return save_safetensors_atomic(path, {k: v.detach().contiguous().cpu() for k, v in state_dict.items()},
                                   {"format": "pt"}, SOLE_WRITER)


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """name -> tensor of a safetensors file; a missing or unreadable file is a one-line error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"cannot read {path}: {reason}") from None


def load_weights(module: nn.Module, state: dict[str, Tensor], source: str | Path) -> None:
    """Copy `state` into `module` strictly: missing, unexpected or mis-shaped tensors are one ValueError line
    naming `source` (at most three names of each kind)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} ({len(names)})"
                 for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes))
                 if names]
        raise ValueError(f"weights in {source} do not match the model: {'; '.join(parts)}")
    with torch.no_grad():
        module.load_state_dict(state, strict=True)


class PretrainedMixin:
    """`save_pretrained` / `from_pretrained` for an nn.Module built from one config dataclass.

    Subclasses set `config_class` (and `pretrained_name`, the word used in errors) and keep their config as
    `self.config`; they may override `config_dict` / `from_config` (how the config is written and the model
    built), `saves_weights` (False for a model whose weights live elsewhere, e.g. a frozen hub encoder) and
    `resolve_folder` (e.g. a built-in name).
    """

    config_class: ClassVar[type]
    pretrained_name: ClassVar[str] = "model"
    config: Any

    def config_dict(self) -> dict:
        """The JSON written as config.json (default: the config dataclass as a dict)."""
        return to_dict(self.config)

    @classmethod
    def from_config(cls: type[M], config: Any) -> M:
        """A new (untrained) model from its config dataclass."""
        return cls(config)

    @classmethod
    def config_from_dict(cls, data: dict, source: str | Path) -> Any:
        """config.json's dict -> the config dataclass (unknown keys are a ConfigError naming `source`)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        try:
            return from_dict(cls.config_class, data)
        except (ConfigError, TypeError) as err:
            raise ConfigError(f"{source}: {err}") from None

    @property
    def saves_weights(self) -> bool:
        """Whether save_pretrained writes model.safetensors (and from_pretrained needs it)."""
        return True

    @classmethod
    def resolve_folder(cls, name_or_path: str | Path) -> Path:
        """The folder a name or path refers to (default: the path itself)."""
        return Path(name_or_path).expanduser()

    def save_pretrained(self, directory: str | Path, state_dict: dict[str, Tensor] | None = None) -> Path:
        """Write directory/config.json and directory/model.safetensors (this model's weights, or `state_dict`
        when given, e.g. EMA weights: the live module is not changed); returns the folder."""
        directory = Path(directory).expanduser()
        write_json(directory / CONFIG_NAME, self.config_dict())
        if self.saves_weights:
            save_weights(self.state_dict() if state_dict is None else state_dict, directory / WEIGHTS_NAME)
        return directory

    @classmethod
    def from_pretrained(cls: type[M], name_or_path: str | Path, *, device: torch.device | str = "cpu") -> M:
        """Rebuild from config.json and load model.safetensors strictly; returns the model in eval mode on
        `device`. Every problem with the folder is a one-line error naming it."""
        directory = cls.resolve_folder(name_or_path)
        if not directory.is_dir():
            raise FileNotFoundError(f"{cls.pretrained_name} folder not found: {directory}")
        if not (directory / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"not a mirokit {cls.pretrained_name} folder: {directory} (missing {CONFIG_NAME})")
        config = cls.config_from_dict(read_json(directory / CONFIG_NAME, "config"), directory / CONFIG_NAME)
        model = cls.from_config(config)
        if model.saves_weights:
            if not (directory / WEIGHTS_NAME).is_file():
                raise FileNotFoundError(f"not a mirokit {cls.pretrained_name} folder: {directory} "
                                        f"(missing {WEIGHTS_NAME})")
            load_weights(model, read_weights(directory / WEIGHTS_NAME), directory / WEIGHTS_NAME)
        return model.to(device).eval()
