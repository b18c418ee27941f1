"""Generate GenEval's folder layout for a prompt file, resumable and split over shards/ranks.

    OUT/settings.json                  the model and every sampling setting (a resume must match them)
    OUT/00000/metadata.jsonl           the prompt's record, one JSON line (as GenEval's generator writes it)
    OUT/00000/samples/0000.png ...     images_per_prompt images

Image j of prompt i starts from noise seeded by (seed, i, j), whatever the sharding, batch size or
resume. The images (i, j) in order are cut into batches of `batch_size`; batch k belongs to shard
k % num_shards (so the shards split the prompts into interleaved runs). A batch is always computed whole,
so for a given batch size an image is bit-identical whether drawn sharded, resumed or in one go (another
batch size changes only the floating-point rounding of the batched network). Every file is written to a
temporary name and renamed, so an existing PNG is a finished image: a rerun skips the batches whose
images all exist (an unreadable PNG is drawn again).
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from mirokit.atomic import SOLE_WRITER, save_image_atomic, temporary_path, write_atomic, write_json_atomic

SETTINGS_NAME = "settings.json"
SHARD_KEYS = ("shard_index", "num_shards", "device", "batch_size", "world_size", "mirokit_version")
"""settings that may differ between the runs filling one folder (they do not change any image)"""


def _finished(path: Path) -> bool:
    """True if `path` is a readable image (a crash leaves only temporary files, but a copy may be corrupt)."""
    if not path.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # any decoding problem means "draw it again"
        return False


def check_settings(out: Path, settings: dict, owner: str = SOLE_WRITER) -> None:
    """Write OUT/settings.json, or check that an existing one was made with the same image-defining settings
    (a one-line error naming the first difference). owner: the writer's stable name (mirokit.atomic)."""
    path = out / SETTINGS_NAME
    temporary_path(path, owner).unlink(missing_ok=True)  # left by this writer's killed run
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON ({err}); remove it or use another --out") from None
        for key in sorted(set(old) | set(settings)):
            if key not in SHARD_KEYS and old.get(key) != settings.get(key):
                raise ValueError(f"{out} was generated with {key}={old.get(key)!r}, not {settings.get(key)!r}; "
                                 f"resume with the same settings or use another --out")
        return
    write_json_atomic(path, settings, owner)


def shard_batches(pairs: list, batch_size: int, shard_index: int, num_shards: int) -> list[list]:
    """This shard's batches: `pairs` cut into runs of `batch_size`, batch k to shard k % num_shards."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"shard index {shard_index} is outside 0..{num_shards - 1}")
    if batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    batches = [pairs[k:k + batch_size] for k in range(0, len(pairs), batch_size)]
    return batches[shard_index::num_shards]


def generate_geneval(pipe, records: list[dict], out: str | Path, sampling=None, *, images_per_prompt: int = 4,
                     shard_index: int = 0, num_shards: int = 1, settings: dict | None = None,
                     progress: bool = True) -> dict:
    """Fill OUT with this shard's images of `records` (GenEval-schema dicts with "prompt").

    sampling: SamplingSettings (targets, sampler; its seed seeds every image's noise); settings: the JSON
    record written to OUT/settings.json and checked on resume. Returns {"prompts" (touched by this
    shard), "written", "skipped" (already there), "redrawn" (unreadable files replaced), "out"}.
    """
    from mirokit.evaluate.samples import render
    from mirokit.sampling import SamplingSettings

    sampling = sampling or SamplingSettings()
    if images_per_prompt < 1:
        raise ValueError("--images-per-prompt must be >= 1")
    if images_per_prompt > 10000 or len(records) > 100000:
        raise ValueError("GenEval's layout numbers images with 4 digits and prompts with 5")
    for targets, default in ((sampling.rewards, 1.0), (sampling.negative_rewards, 0.0)):  # fail before any work
        pipe.generator.rewards_tensor(dict(targets), 1, default)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    owner = f"shard-{shard_index:05d}-of-{num_shards:05d}"  # one writer per shard: a rerun reuses its temporaries
    check_settings(out, dict(settings or {}, images_per_prompt=images_per_prompt, seed=sampling.seed), owner)
    pairs = [(i, j) for i in range(len(records)) for j in range(images_per_prompt)]
    mine = shard_batches(pairs, sampling.batch_size, shard_index, num_shards)
    prompts = sorted({i for batch in mine for i, _ in batch})
    for i in prompts:
        folder = out / f"{i:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        line = json.dumps(records[i]) + "\n"
        meta = folder / "metadata.jsonl"
        if not meta.is_file() or meta.read_text() != line:
            write_atomic(meta, line, owner)
        temporary_path(meta, owner).unlink(missing_ok=True)
    todo, skipped, redrawn = [], 0, 0
    for batch in mine:
        paths = [out / f"{i:05d}" / "samples" / f"{j:04d}.png" for i, j in batch]
        missing = [k for k, path in enumerate(paths) if not _finished(path)]
        if missing:
            redrawn += sum(paths[k].exists() for k in missing)
            todo.append((batch, missing))
        skipped += len(batch) - len(missing)
    bar = tqdm(total=sum(len(m) for _, m in todo), desc=f"generating (shard {shard_index + 1}/{num_shards})",
               unit="img", disable=not progress or not todo, dynamic_ncols=True)
    for batch, missing in todo:
        images = render(pipe, [records[i]["prompt"] for i, _ in batch], batch, sampling)
        for k in missing:  # the batch is computed whole (bit-identical images); only the missing ones are written
            i, j = batch[k]
            path = out / f"{i:05d}" / "samples" / f"{j:04d}.png"
            save_image_atomic(path, images[k], owner)  # redrawn after a kill: the same temporary, renamed
        bar.update(len(missing))
    bar.close()
    return {"prompts": len(prompts), "written": sum(len(m) for _, m in todo), "skipped": skipped,
            "redrawn": redrawn, "out": str(out)}
