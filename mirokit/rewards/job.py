"""A resumable, splittable scoring run: input units -> one parquet of raw scores per unit + a manifest.

The units, resume, splitting, workers and bad-input accounting are the shared skeleton of
mirokit.rewards.unit_job; this module adds the scorers, the score columns and the enriched shards.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mirokit.rewards.inputs import InputUnit
from mirokit.rewards.registry import build_scorer
from mirokit.rewards.unit_job import UnitJobConfig, run_units, unit_output, write_manifest, write_table
from mirokit.tars import copy_shard

CAPTION_LENGTH = {"clip_score": "long", "vqa_score": "long", "aesthetic_score": "image",
                  "image_reward_score": "short", "pick_a_score_score": "short", "hpsv2_score": "short",
                  "sciscore_score": "short"}
"""which form of a named caption each reward scores, as the official pipeline does: the long synthetic caption for
jina-clip (1024 tokens) and VQAScore, the short one for the 77-token scorers, the image alone for the aesthetic
score (scored once, whatever the caption); a key not listed scores the long caption, unless its scorer declares
`caption_length` itself (e.g. "image" for a pixel-only reward)"""
LENGTHS = ("long", "short", "image")


@dataclass(kw_only=True)
class ScoreJobConfig(UnitJobConfig):
    """What to score, with which rewards, and which part of the work this process does."""

    rewards: list[str]
    """reward keys to compute (see `mirokit score --list`)"""
    reward_options: dict = field(default_factory=dict)
    """per-reward scorer options, e.g. {"clip_score": {"model": "/models/jina-clip-v2"}}"""
    device: str = "cpu"
    enrich: bool = False
    captions: list[str] = field(default_factory=list)
    """named captions to score too ({key}.NAME.txt / NAME_caption): columns and JSON keys NAME_<reward>"""
    caption_length: dict = field(default_factory=dict)
    """per reward, which form of a named caption it scores: long ({key}.NAME.txt), short ({key}.NAME_short.txt,
    the long one where a sample has no short one) or image (the score does not read captions: computed once);
    keys not given follow CAPTION_LENGTH"""

    def length_of(self, key: str, scorer=None) -> str:
        """long | short | image for reward `key` (given, else the official choice, else the scorer's own)."""
        default = CAPTION_LENGTH.get(key, getattr(scorer, "caption_length", "long"))
        return self.caption_length.get(key, default)


def _enrich(unit: InputUnit, rows: list[dict], reward_keys: list[str], out: Path) -> None:
    """Copy a tar shard adding each sample's scores to its {key}.json (the official enriched layout)."""
    scores = {r["key"]: {k: (None if np.isnan(r[k]) else float(r[k])) for k in reward_keys} for r in rows}

    def edit(name: str, data: bytes) -> bytes:
        key, _, ext = Path(name).name.partition(".")
        if ext != "json" or key not in scores:
            return data
        return json.dumps({**json.loads(data or b"{}"), **scores.pop(key)}).encode()

    missing = lambda: {f"{k}.json": json.dumps(v).encode() for k, v in scores.items()}  # no .json
    copy_shard(unit.path, out, edit, missing)


def run_score_job(cfg: ScoreJobConfig) -> dict:
    """Score this process's share of the units; returns (and writes) the manifest."""
    from mirokit.rewards.registry import available_scorers

    known = available_scorers()
    missing = [k for k in cfg.rewards if k not in known]
    if missing:
        raise ValueError(f"unknown reward key {missing[0]!r}; known: {', '.join(known)}")
    if not cfg.rewards:
        raise ValueError("no rewards to score: pass at least one --reward KEY")
    unknown = set(cfg.reward_options) - set(cfg.rewards)
    if unknown:
        raise ValueError(f"options given for reward(s) not being scored: {', '.join(sorted(unknown))}")
    unknown = set(cfg.caption_length) - set(cfg.rewards)
    bad = {k: v for k, v in cfg.caption_length.items() if v not in LENGTHS}
    if unknown or bad:
        raise ValueError(f"--caption-length: {', '.join(sorted(unknown))} not being scored" if unknown else
                         f"--caption-length {next(iter(bad))}={next(iter(bad.values()))!r}: use long, short or image")
    out = Path(cfg.out_dir)
    scorers = {k: build_scorer(k, **dict(cfg.reward_options.get(k, {})), **_device_opt(k, cfg)) for k in cfg.rewards}
    columns = [*cfg.rewards, *(f"{name}_{k}" for name in cfg.captions for k in cfg.rewards)]

    def process(batch: list) -> tuple[list[dict], int]:
        ok = [j for j, (_, _, img, err, _) in enumerate(batch) if img is not None and not err]
        values = {k: np.full(len(batch), np.nan, dtype=np.float32) for k in columns}
        for name in ["", *cfg.captions]:  # the caption, then each named caption (rows that have it)
            rows_ok = [j for j in ok if not name or name in batch[j][4]]
            if not rows_ok:
                continue
            images = [batch[j][2] for j in rows_ok]
            for k, scorer in scorers.items():
                length = cfg.length_of(k, scorer)
                if name and length == "image":  # the caption is not read: the score of the image, once
                    values[f"{name}_{k}"][rows_ok] = values[k][rows_ok]
                    continue
                extras = [batch[j][4] for j in rows_ok]
                captions = ([e.get(f"{name}_short", e[name]) if length == "short" else e[name] for e in extras]
                            if name else [batch[j][1] for j in rows_ok])
                values[f"{name}_{k}" if name else k][rows_ok] = scorer.score(images, captions)
        rows = [{"key": key, "caption": caption or "", "error": err, **{k: values[k][j] for k in columns}}
                for j, (key, caption, _, err, _) in enumerate(batch)]
        return rows, len(ok)

    def finish(unit: InputUnit, rows: list[dict]) -> None:
        if cfg.enrich and unit.kind == "tar":
            _enrich(unit, rows, columns, out / "enriched" / f"{unit.name}.tar")
        write_table(rows, unit_output(out, unit), strings=["key", "caption", "error"], floats=columns)

    common = run_units(cfg, desc="scoring", process=process, finish=finish, done_name="scored",
                       extra_dirs=("enriched",) if cfg.enrich else ())
    manifest = {"config": asdict(cfg), **common,
                "caption_length": {k: cfg.length_of(k, scorer) for k, scorer in scorers.items()},
                "models": {k: (s.describe() if hasattr(s, "describe") else {"key": k}) for k, s in scorers.items()}}
    write_manifest(out, cfg, manifest)
    return manifest


def _device_opt(key: str, cfg: ScoreJobConfig) -> dict:
    """Pass the device to model-based scorers only (built-in pixel rewards take no options)."""
    from mirokit.rewards.base import ModelScorer
    from mirokit.rewards.registry import scorer_factory

    factory = scorer_factory(key)
    if (isinstance(factory, type) and issubclass(factory, ModelScorer)
            and "device" not in cfg.reward_options.get(key, {})):
        return {"device": cfg.device}
    return {}
