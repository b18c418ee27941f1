"""Trained weights -> a loadable model folder: one `pipeline_from_ema` for the final export, every checkpoint's
model part, `mirokit export` of any (sharded) checkpoint, and the validation grids."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mirokit.config import from_dict, to_dict
from mirokit.data.source import DatasetInfo
from mirokit.encoders.pixel import ImageSpace, build_image_space
from mirokit.encoders.text import TextEncoder, build_text_encoder
from mirokit.models.generator import MiroGenerator, architecture_only
from mirokit.pipeline import MiroPipeline
from mirokit.pretrained import load_weights
from mirokit.train.checkpoint import read_state, read_tensors
from mirokit.train.config import RunConfig
from mirokit.train.trainable import exported_names


def split_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Entries of `state` whose name starts with `prefix.`, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def parse_init_from(source: str) -> tuple[str, str | None, str | None]:
    """`train.init_from` -> (folder or hub id, variant, revision). An existing local path is taken whole; otherwise
    `NAME[:VARIANT][@REVISION]` (e.g. nicolas-dufour/miro-ablations:miro-no-clip, or a local ablations folder
    `DIR:miro-no-clip`)."""
    if not source or Path(source).expanduser().exists():
        return source, None, None
    name, revision = source.rsplit("@", 1) if "@" in source else (source, None)
    name, variant = name.split(":", 1) if ":" in name else (name, None)
    return name, variant or None, revision or None


def parent_record(source: str) -> dict:
    """The parent a model was fine-tuned from, as its pipeline.json records it: {"init_from", "variant",
    "revision"} (revision: the hub commit the weights came from; None for a local folder)."""
    name, variant, revision = parse_init_from(source)
    return {"init_from": name, "variant": variant, "revision": revision}


def pipeline_from_ema(cfg: RunConfig, ema_state: dict[str, Tensor], *, info: DatasetInfo, step: int,
                      text_encoder: TextEncoder | None = None, image_space: ImageSpace | None = None,
                      device: torch.device | str | None = None) -> MiroPipeline:
    """A MiroPipeline of fresh, unsharded copies holding the full EMA tensors `ema_state` ("generator.*", and
    "text_encoder.*" when the encoder is trained) of a run configured by `cfg`, with the data's calibration
    and empty-prompt states. A frozen `text_encoder` (or `image_space`) is reused as it is; otherwise built
    from `cfg`. With `device` the pipeline moves there (shared parts too); else the new copies stay on the CPU.
    Names that do not fit the config are a one-line error."""
    generator = MiroGenerator(architecture_only(cfg.model))  # the weights come next: none read from the hub
    load_weights(generator, split_prefix(ema_state, "generator"), f"the EMA weights of step {step}")
    encoder = text_encoder if text_encoder is not None else build_text_encoder(cfg.text_encoder)
    if encoder.trainable:
        encoder = build_text_encoder(cfg.text_encoder)
        load_weights(encoder, split_prefix(ema_state, "text_encoder"), f"the text encoder's EMA weights of step {step}")
    space = image_space if image_space is not None else build_image_space(cfg.image_space)
    extra = {"training": to_dict(cfg), "step": step, **({"sampler_defaults": cfg.sampling} if cfg.sampling else {})}
    if cfg.train.init_from:  # the parent (a hub parent's id is the card's base_model)
        extra["parent"] = parent_record(cfg.train.init_from)
        if extra["parent"]["revision"] is not None:
            extra["base_model"] = extra["parent"]["init_from"]
    pipe = MiroPipeline(generator.eval(), encoder.eval(), space, extra=extra, uncond_text=info.uncond_text,
                        calibration=info.calibration)
    return pipe if device is None else pipe.to(device)


def checkpoint_config(meta: dict) -> RunConfig:
    """The resolved run config stored in a checkpoint's state.json."""
    return from_dict(RunConfig, (meta.get("train") or {}).get("config", meta.get("config")))


def checkpoint_weights(checkpoint: str | Path, cfg: RunConfig) -> dict[str, Tensor]:
    """The exported model's full tensors ("generator.*", "text_encoder.*") of a checkpoint of the run `cfg`: its
    EMA, joined from every rank's shards; a run with frozen parameters (train.trainable, train.lora) takes those
    from the raw weights (its LoRA layers' merged weights are in the EMA)."""
    state = read_tensors(checkpoint, "ema.")
    if cfg.train.trainable or cfg.train.lora is not None:
        state = {**exported_names(read_tensors(checkpoint, "model.")), **state}
    return state


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Write a loadable model folder from any training checkpoint (sharded or not), in this process.

    The EMA shards of every rank are read and joined into full tensors (`checkpoint_weights`).
    """
    checkpoint, out = Path(checkpoint), Path(out)
    meta = read_state(checkpoint)
    cfg = checkpoint_config(meta)
    pipe = pipeline_from_ema(cfg, checkpoint_weights(checkpoint, cfg), info=DatasetInfo.load(checkpoint),
                             step=int(meta["step"]))
    pipe.save_pretrained(out)
    return out
