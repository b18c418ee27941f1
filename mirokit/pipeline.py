"""A trained text-to-image model on disk: generator + text encoder + image space.

Checkpoint directory layout (HF style, no pickle):
    config.json            generator config (GeneratorConfig as JSON)
    model.safetensors      generator weights (EMA when written by the trainer)
    text_encoder/          text encoder spec (config.json) and, if trained, its model.safetensors
    pipeline.json          image space, reward keys, mirokit version, resolved training config
    train_state/           only in training checkpoints: everything needed to resume exactly
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from mirokit.encoders.pixel import ImageSpace, PixelSpace, build_image_space
from mirokit.encoders.text import TextEncoder, load_text_encoder
from mirokit.models.generator import MiroGenerator

PIPELINE_NAME = "pipeline.json"
TEXT_ENCODER_DIR = "text_encoder"
FORMAT_VERSION = 2
"""2: config.json's backbone is a {kind: ...} section (format 1 files are upgraded on load)"""


class MiroPipeline:
    """Holds the pieces needed to turn prompts + reward targets into images."""

    def __init__(self, generator: MiroGenerator, text_encoder: TextEncoder, image_space: ImageSpace | None = None,
                 extra: dict | None = None):
        self.generator = generator
        self.text_encoder = text_encoder
        self.image_space = image_space or PixelSpace()
        self.extra = dict(extra or {})

    @property
    def device(self) -> torch.device:
        """Where the generator's weights are."""
        return next(self.generator.parameters()).device

    @property
    def reward_keys(self) -> list[str]:
        """The generator's reward keys, in order."""
        return self.generator.reward_keys

    def to(self, device: torch.device | str) -> "MiroPipeline":
        """Move generator and text encoder to `device`; returns self."""
        self.generator.to(device)
        self.text_encoder.to(device)
        return self

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """captions: B strings -> (B, L, D) embeddings, (B, L) bool mask, on the generator's device."""
        emb, mask = self.text_encoder(list(captions))
        return emb.to(self.device), mask.to(self.device)

    def save_pretrained(self, directory: str | Path, *, generator_state: dict | None = None,
                        text_encoder_state: dict | None = None) -> None:
        """Write the checkpoint layout above; explicit state dicts (e.g. EMA weights) are written instead of
        the live weights (which are not touched)."""
        from mirokit import __version__

        directory = Path(directory)
        self.generator.save_pretrained(directory, state_dict=generator_state)
        self.text_encoder.save_pretrained(directory / TEXT_ENCODER_DIR, state_dict=text_encoder_state)
        meta = {"format_version": FORMAT_VERSION, "mirokit_version": __version__,
                "image_space": self.image_space.spec(), "reward_keys": self.reward_keys, **self.extra}
        (directory / PIPELINE_NAME).write_text(json.dumps(meta, indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: torch.device | str = "cpu") -> "MiroPipeline":
        """Load a checkpoint directory; a missing or incomplete one gives a one-line error."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"model directory not found: {directory}")
        if not (directory / PIPELINE_NAME).is_file():
            if (directory / "train_state").is_dir():
                raise FileNotFoundError(f"{directory} is a training checkpoint of a sharded run without a model "
                                        f"export; write one with `mirokit export {directory} --out DIR`")
            raise FileNotFoundError(f"not a mirokit model directory: {directory} (missing {PIPELINE_NAME})")
        meta = json.loads((directory / PIPELINE_NAME).read_text())
        generator = MiroGenerator.from_pretrained(directory, device=device)
        text_encoder = load_text_encoder(directory / TEXT_ENCODER_DIR).to(device).eval()
        extra = {k: v for k, v in meta.items() if k not in ("image_space", "reward_keys")}
        return cls(generator, text_encoder, build_image_space(meta.get("image_space") or {"kind": "pixels"}), extra)
