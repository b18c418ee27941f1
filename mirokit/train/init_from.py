"""Start a run from a trained model (`train.init_from`): fine-tuning, with reward keys added or dropped.

The parent is a mirokit model folder, a run checkpoint (or a run folder: its newest checkpoint; the EMA weights are
read), a released MIRO folder (converted on the fly) or a hub id `OWNER/NAME[:VARIANT][@REVISION]`. Its weights go
into the freshly built generator (and a trained text encoder) *before* parallelisation, mapped by name; the
optimizer, the EMA and the schedule start fresh. Only a fresh run reads the parent: a resume continues its own
checkpoint (and takes the parent record and the masked keys back from that checkpoint's config).

Reward keys may differ from the parent's, and are matched by name, never by position:
- a kept key keeps its embedder (`reward_embedders.<key>.*`) and its row of `reward_position`;
- a dropped key's tensors are left out;
- an added key gets a new embedder and position row, and is put in `model.conditioning.masked_when_missing`: when
  its reward is missing (or dropped in training) its token is masked out of every attention instead of being the
  position embedding alone, so with the new reward missing the model's conditioning sequence is its parent's plus
  one token nothing reads: at step 0 it gives its parent's outputs (tests/train/test_init_from.py measures it).

A tensor whose shape differs (another width, another text dimension) is a one-line ValueError naming it. The run
prints one report: what was loaded, newly initialised and dropped, and how the data's reward calibration compares
with the parent's (the run always calibrates with its own data; the report says for which kept keys that is the
parent's calibration and for which the same target now stands for other raw scores).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from mirokit.config import to_dict
from mirokit.data.calibration import Calibration
from mirokit.data.source import DatasetInfo
from mirokit.models.generator import GeneratorConfig, MiroGenerator
from mirokit.pretrained import CONFIG_NAME, WEIGHTS_NAME, read_json, read_weights
from mirokit.train.checkpoint import latest_checkpoint, read_state
from mirokit.train.config import RunConfig
from mirokit.train.export import checkpoint_config, checkpoint_weights, parse_init_from, split_prefix

POSITION = "network.conditioner.reward_position"
EMBEDDER = re.compile(r"^network\.conditioner\.reward_embedders\.([^.]+)\.")
CONFIG_NOTES_IGNORED = ("reward_keys", "conditioning.masked_when_missing")
"""model config fields that may differ from the parent's without a note (the reward keys are reported by name)"""


@dataclass
class Parent:
    """A parent model read from disk: its generator config and tensors, its trained text encoder (if any), its
    reward calibration (if any) and what it is (`kind`: mirokit | checkpoint | official)."""

    source: str
    pinned: str
    kind: str
    config: GeneratorConfig
    generator: dict[str, Tensor]
    text_encoder: dict[str, Tensor] | None = None
    text_encoder_spec: dict = field(default_factory=dict)
    calibration: Calibration | None = None


def resolve_parent(source: str) -> tuple[Path, str]:
    """`train.init_from` -> (the folder, the source pinned to the hub commit it was downloaded at, if any)."""
    from mirokit.sources import is_local, model_folder

    name, variant, revision = parse_init_from(source)
    try:
        directory = model_folder(name, variant, revision=revision)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"train.init_from: {err}") from None
    snapshot = directory.parent if variant else directory
    local = is_local(name)
    if not local and snapshot.parent.name == "snapshots":  # downloaded: pin the commit the weights came from
        revision = snapshot.name
    pinned = name + (f":{variant}" if variant else "") + (f"@{revision}" if revision and not local else "")
    return directory, pinned


def load_parent(source: str) -> Parent:
    """Read the parent named by `train.init_from` (see the module docstring); anything else is a one-line error."""
    from mirokit.pipeline import _is_official

    directory, pinned = resolve_parent(source)
    if not (directory / "train_state").is_dir() and (directory / "checkpoints").is_dir():
        newest = latest_checkpoint(directory)
        if newest is None:
            raise FileNotFoundError(f"train.init_from: the run folder {directory} has no complete checkpoint")
        directory = newest
    if (directory / "train_state").is_dir():
        meta = read_state(directory)
        run = checkpoint_config(meta)
        ema = checkpoint_weights(directory, run)  # the EMA (and the frozen weights of a partly trained run)
        encoder = split_prefix(ema, "text_encoder") or None
        return Parent(source, pinned, "checkpoint", run.model, split_prefix(ema, "generator"), encoder,
                      to_dict(run.text_encoder), DatasetInfo.load(directory).calibration)
    if _is_official(directory):
        from mirokit.models.official import convert_official_config, convert_official_state_dict

        config = read_json(directory / CONFIG_NAME, "config")
        spec = {"kind": "hf_t5", "name_or_path": config.get("text_encoder_repo", "google/flan-t5-xl")}
        return Parent(source, pinned, "official", convert_official_config(config),
                      convert_official_state_dict(read_weights(directory / WEIGHTS_NAME)), None, spec, None)
    if (directory / "pipeline.json").is_file():
        config = MiroGenerator.config_from_dict(read_json(directory / CONFIG_NAME, "config"), directory / CONFIG_NAME)
        encoder_dir = directory / "text_encoder"
        encoder = read_weights(encoder_dir / WEIGHTS_NAME) if (encoder_dir / WEIGHTS_NAME).is_file() else None
        has_spec = (encoder_dir / CONFIG_NAME).is_file()
        spec = read_json(encoder_dir / CONFIG_NAME, "text encoder config") if has_spec else {}
        return Parent(source, pinned, "mirokit", config, read_weights(directory / WEIGHTS_NAME), encoder, spec,
                      DatasetInfo.load(directory).calibration)
    raise FileNotFoundError(f"train.init_from: {directory} is not a mirokit model folder, a run checkpoint or a "
                            "released MIRO folder")


def child_model_config(model: GeneratorConfig, parent: GeneratorConfig) -> GeneratorConfig:
    """The run's model config with the keys it adds to its parent (and the parent's own masked keys it keeps) in
    `conditioning.masked_when_missing`, in the run's key order."""
    masked = set(model.conditioning.masked_when_missing) | set(parent.conditioning.masked_when_missing)
    masked |= {k for k in model.reward_keys if k not in parent.reward_keys}
    ordered = [k for k in model.reward_keys if k in masked]
    return replace(model, conditioning=replace(model.conditioning, masked_when_missing=ordered))


def _flat(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: obj}


def config_notes(model: GeneratorConfig, parent: GeneratorConfig) -> list[str]:
    """Model settings that differ from the parent's without changing a tensor's shape (e.g. heads), as text."""
    mine, theirs = _flat(to_dict(model)), _flat(to_dict(parent))
    return [f"model.{k}: {theirs.get(k)!r} -> {mine.get(k)!r}" for k in sorted(set(mine) | set(theirs))
            if mine.get(k) != theirs.get(k) and k not in CONFIG_NOTES_IGNORED and k != "text_dim"]


@dataclass
class LoadReport:
    """What `load_parent_weights` did: counts and names (grouped per reward key) for the report."""

    loaded: int = 0
    new: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _group(names: list[str]) -> list[str]:
    """Tensor names with each reward embedder's tensors as one `...reward_embedders.KEY.*` entry."""
    out: list[str] = []
    for name in names:
        match = EMBEDDER.match(name)
        entry = f"network.conditioner.reward_embedders.{match.group(1)}.*" if match else name
        if entry not in out:
            out.append(entry)
    return out


def _mismatch(source: str, found: list[tuple[str, Tensor, Tensor]]) -> ValueError:
    """One line naming the first of the tensors `found` (name, parent's, run's) whose shapes differ."""
    name, theirs, mine = found[0]
    hint = " (model.text_dim: the run's text encoder gives other text tokens than the parent's)" \
        if name.endswith("text_proj.weight") and theirs.shape[0] == mine.shape[0] else ""
    more = f" (and {len(found) - 1} more tensors)" if len(found) > 1 else ""
    return ValueError(f"train.init_from {source}: tensor {name} is {tuple(theirs.shape)} in the parent and "
                      f"{tuple(mine.shape)} in this run{hint}{more}; model.* must describe the parent's architecture")


def map_generator_state(own: dict[str, Tensor], parent: Parent, keys: list[str],
                        report: LoadReport) -> dict[str, Tensor]:
    """The generator's state dict `own` (reward keys `keys`) with every tensor the parent has taken from it, the
    reward embedders and `reward_position` rows matched by key name; mis-shaped tensors are a one-line error."""
    theirs, parent_keys = parent.generator, list(parent.config.reward_keys)
    state, new, found = dict(own), [], []
    for name, mine in own.items():
        if name == POSITION:
            if POSITION not in theirs or not any(k in parent_keys for k in keys):
                new.append(f"{POSITION}[{', '.join(keys)}]")
                continue
            rows = theirs[POSITION]
            if rows.shape[1:] != mine.shape[1:]:
                found.append((name, rows, mine))
                continue
            merged = mine.detach().clone()
            for i, key in enumerate(keys):
                if key in parent_keys:
                    merged[i] = rows[parent_keys.index(key)]
            state[name] = merged
            report.loaded += 1
            added = [k for k in keys if k not in parent_keys]
            if added:
                new.append(f"{POSITION}[{', '.join(added)}]")
            continue
        if name not in theirs:
            new.append(name)
            continue
        if theirs[name].shape != mine.shape:
            found.append((name, theirs[name], mine))
            continue
        state[name] = theirs[name]
        report.loaded += 1
    if found:
        raise _mismatch(parent.source, found)
    report.new += _group(new)
    gone = [k for k in parent_keys if k not in keys]
    report.dropped += _group([n for n in theirs if n not in own and n != POSITION])
    if gone and POSITION in theirs:
        report.dropped.append(f"{POSITION}[{', '.join(gone)}]")
    return state


def load_parent_weights(parent: Parent, generator: MiroGenerator, text_encoder: nn.Module | None) -> LoadReport:
    """Copy the parent's tensors into `generator` (and a trainable `text_encoder`, when the parent has one) in
    place, unsharded; returns what was loaded, newly initialised and dropped."""
    report = LoadReport()
    state = map_generator_state(generator.state_dict(), parent, generator.reward_keys, report)
    with torch.no_grad():
        generator.load_state_dict(state, strict=True)
    if text_encoder is not None and parent.text_encoder is not None:
        own = text_encoder.state_dict()
        found = [(f"text_encoder.{k}", parent.text_encoder[k], v) for k, v in own.items()
                 if k in parent.text_encoder and parent.text_encoder[k].shape != v.shape]
        if found:
            raise _mismatch(parent.source, found)
        taken = {k: v for k, v in parent.text_encoder.items() if k in own}
        with torch.no_grad():
            text_encoder.load_state_dict({**own, **taken}, strict=True)
        report.loaded += len(taken)
        report.new += [f"text_encoder.{k}" for k in own if k not in taken]
        report.dropped += [f"text_encoder.{k}" for k in parent.text_encoder if k not in own]
    elif text_encoder is not None:
        report.new.append("text_encoder.* (the parent's text encoder was not trained)")
    elif parent.text_encoder is not None:
        report.dropped.append("text_encoder.* (the parent trained its text encoder; this run's is frozen)")
    return report


def calibration_note(parent: Parent, keys: list[str], info: DatasetInfo) -> str:
    """One line: the run calibrates with its data; for which kept keys that equals the parent's calibration."""
    kept = [k for k in keys if k in parent.config.reward_keys]
    mine = info.calibration.rewards if info.calibration is not None else {}
    if parent.calibration is None:
        return ("calibration: the parent has no calibration.json, so its targets cannot be compared with this data's "
                f"({'calibrated: ' + ', '.join(k for k in keys if k in mine) if mine else 'uncalibrated'})")
    theirs = parent.calibration.rewards
    same = [k for k in kept if k in mine and k in theirs and mine[k].edges == theirs[k].edges]
    other = [k for k in kept if k in mine and k not in same]
    raw = [k for k in kept if k in theirs and k not in mine]
    parts = [f"the parent's for {', '.join(same)} (same raw-score bins)" if same else "",
             f"recalibrated on this data for {', '.join(other)} (a target now stands for other raw scores than in the "
             "parent)" if other else "",
             f"not calibrated in this data for {', '.join(raw)} (its values are taken as given; the parent's were "
             "calibrated)" if raw else ""]
    return "calibration: this run's data decides: " + ("; ".join(p for p in parts if p) or "no kept key is calibrated")


@dataclass
class InitFrom:
    """`train.init_from` in the Trainer: `prepare` (before the generator is built), `load` (into the unsharded train
    module), `report` (once the data is known; rank 0 prints)."""

    cfg: RunConfig
    parent: Parent | None = None
    loaded: LoadReport | None = None
    is_main: bool = True

    @classmethod
    def prepare(cls, cfg: RunConfig, *, is_main: bool = True) -> InitFrom:
        """A fresh run with train.init_from reads the parent and adds its masked keys to the model config; a resumed
        run takes the parent record and masked keys of its own checkpoint (a resume always wins)."""
        latest = latest_checkpoint(cfg.out_dir)
        if latest is not None:
            stored = ((read_state(latest).get("train") or {}).get("config") or {})
            masked = ((stored.get("model") or {}).get("conditioning") or {}).get("masked_when_missing") or []
            before = (stored.get("train") or {}).get("init_from", "")
            if cfg.train.init_from and is_main:
                print(f"train.init_from {cfg.train.init_from} ignored: resuming {latest}")
            model = replace(cfg.model, conditioning=replace(cfg.model.conditioning, masked_when_missing=list(masked)))
            return cls(replace(cfg, model=model, train=replace(cfg.train, init_from=before)), is_main=is_main)
        if not cfg.train.init_from:
            return cls(cfg, is_main=is_main)
        parent = load_parent(cfg.train.init_from)
        model = child_model_config(cfg.model, parent.config)
        return cls(replace(cfg, model=model, train=replace(cfg.train, init_from=parent.pinned)), parent,
                   is_main=is_main)

    def load(self, module: nn.Module) -> None:
        """Put the parent's weights into the train module's generator (and trainable text encoder)."""
        if self.parent is not None:
            self.loaded = load_parent_weights(self.parent, module.generator, module.text_encoder)
            self.parent.generator = self.parent.text_encoder = None  # free the copies

    def report(self, info: DatasetInfo) -> str | None:
        """The one report block (printed on rank 0), or None for a run without a parent."""
        if self.parent is None or self.loaded is None:
            return None
        parent, r = self.parent, self.loaded
        lines = [f"init_from {parent.pinned} ({parent.kind}): loaded {r.loaded} tensors, newly initialised: "
                 f"{r.new}, dropped: {r.dropped}"]
        keys = list(self.cfg.model.reward_keys)
        added = [k for k in keys if k not in parent.config.reward_keys]
        gone = [k for k in parent.config.reward_keys if k not in keys]
        if added or gone:
            change = [f"added {added} (masked when missing: with them missing the start equals the parent)" if added
                      else "", f"dropped {gone}" if gone else ""]
            lines.append(f"  reward keys: parent {list(parent.config.reward_keys)} -> {keys}: "
                         + "; ".join(c for c in change if c))
        lines.append("  " + calibration_note(parent, keys, info))
        notes = config_notes(self.cfg.model, parent.config)
        if notes:
            lines.append(f"  model settings differ from the parent's: {'; '.join(notes)}")
        spec = parent.text_encoder_spec
        own = to_dict(self.cfg.text_encoder)
        if spec and (spec.get("kind"), spec.get("name_or_path")) != (own.get("kind"), own.get("name_or_path")):
            lines.append(f"  text encoder differs from the parent's: {json.dumps(spec)} -> {json.dumps(own)}")
        text = "\n".join(lines)
        if self.is_main:
            print(text, flush=True)
        return text
