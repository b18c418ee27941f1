"""`mirokit recaption`: synthetic captions for every image, on the same skeleton as `mirokit score`.

Same inputs, units, resume, splitting and bad-input accounting (mirokit.rewards.unit_job). Writes
OUT/<unit>.parquet (key, caption_source: the original caption, caption: the synthetic one, short_caption with
`short` or a shortening text model, error) and a manifest (the captioner and its generation settings, versions,
counts); with `write_shards`, a copy of each tar shard in OUT/shards/ with `{key}.NAME.txt` (and `{key}.NAME_short.txt`)
added, which `mirokit score --caption NAME` and `mirokit encode --caption NAME` read unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mirokit.captions.registry import build_captioner
from mirokit.rewards.inputs import InputUnit
from mirokit.rewards.unit_job import UnitJobConfig, run_units, unit_output, write_manifest, write_table
from mirokit.tars import copy_shard


@dataclass(kw_only=True)
class RecaptionJobConfig(UnitJobConfig):
    """What to caption, with which captioner, and where the captions go."""

    captioner: str = "vlm"
    """a registered captioner kind (`vlm`: any transformers VLM; `world_detector`: the shapes world's)"""
    captioner_options: dict = field(default_factory=dict)
    """the captioner's keyword options, e.g. {"model": "HuggingFaceTB/SmolVLM-256M-Instruct", "max_new_tokens": 96}"""
    name: str = "synthetic"
    """the caption's name: {key}.NAME.txt in the shards, NAME_<reward> columns when scored"""
    short: bool = False
    """also write a short caption per image (the captioner's short pass): {key}.NAME_short.txt"""
    shortener_options: dict = field(default_factory=dict)
    """a text model shortens the long captions instead of the captioner's short pass (implies `short`): the
    keyword options of mirokit.captions.shorten.TextShortener, e.g. {"model": "Qwen/Qwen2.5-1.5B-Instruct"}"""
    write_shards: bool = False
    """also write OUT/shards/<shard>.tar: each input shard with the captions added"""


def _with_captions(unit: InputUnit, rows: list[dict], name: str, out: Path) -> None:
    """Copy a tar shard adding {key}.NAME.txt (and {key}.NAME_short.txt) for every captioned sample; an older
    caption of the same name is replaced."""
    added = {}
    for r in rows:
        if r["caption"] is not None:
            added[f"{r['key']}.{name}.txt"] = r["caption"].encode("utf-8")
            if r.get("short_caption") is not None:
                added[f"{r['key']}.{name}_short.txt"] = r["short_caption"].encode("utf-8")
    copy_shard(unit.path, out, lambda member, data: None if Path(member).name in added else data, lambda: added)


def run_recaption_job(cfg: RecaptionJobConfig) -> dict:
    """Caption this process's share of the units; returns (and writes) the manifest."""
    if not cfg.name or not cfg.name.replace("_", "").isalnum():
        raise ValueError(f"--name must be letters, digits and _ (it becomes {{key}}.NAME.txt), got {cfg.name!r}")
    out = Path(cfg.out_dir)
    captioner = build_captioner(cfg.captioner, **cfg.captioner_options)
    shortener = None
    if cfg.shortener_options:
        from mirokit.captions.shorten import TextShortener

        shortener = TextShortener(**cfg.shortener_options)
    short_column = cfg.short or shortener is not None

    def process(batch: list) -> tuple[list[dict], int]:
        ok = [j for j, (_, _, image, error, _) in enumerate(batch) if image is not None and not error]
        images = [batch[j][2] for j in ok]
        hints = [batch[j][1] or None for j in ok]
        long = dict(zip(ok, captioner.caption(images, hints)))
        if shortener is not None:
            short = dict(zip(ok, shortener.shorten([long[j] for j in ok])))
        else:
            short = dict(zip(ok, captioner.caption(images, hints, short=True))) if cfg.short else {}
        rows = [{"key": key, "caption_source": caption or "", "caption": long.get(j),
                 "short_caption": short.get(j), "error": error}
                for j, (key, caption, _, error, _) in enumerate(batch)]
        return rows, len(ok)

    def finish(unit: InputUnit, rows: list[dict]) -> None:
        if cfg.write_shards and unit.kind == "tar":
            _with_captions(unit, rows, cfg.name, out / "shards" / f"{unit.name}.tar")
        strings = ["key", "caption_source", "caption", *(["short_caption"] if short_column else []), "error"]
        write_table(rows, unit_output(out, unit), strings=strings)

    common = run_units(cfg, desc="captioning", process=process, finish=finish, need_caption=False,
                       done_name="captioned", extra_dirs=("shards",) if cfg.write_shards else ())
    manifest = {"config": asdict(cfg), **common, "captioner": captioner.describe(),
                "shortener": shortener.describe() if shortener is not None else None}
    write_manifest(out, cfg, manifest)
    return manifest
