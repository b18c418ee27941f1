"""What `mirokit sample` leaves on disk: one PNG per image (`III_JJJ.png`: prompt III, image JJJ of it) and
settings.json, the record of the model and every setting plus the list of images, each written atomically."""

from __future__ import annotations

from pathlib import Path

from mirokit.atomic import save_image_atomic, write_json_atomic

SETTINGS_NAME = "settings.json"


def sample_name(prompt_index: int, image_index: int) -> str:
    """The file name of image `image_index` of prompt `prompt_index`: 003_001.png."""
    return f"{prompt_index:03d}_{image_index:03d}.png"


def save_samples(output, folder: str | Path, record: dict) -> list[dict]:
    """Write the images of a pipeline `output` (its `images`, `prompts` and (prompt, image) `indices`) as PNGs
    into `folder` (created), then FOLDER/settings.json: `record` plus "images", the list [{"file", "prompt"}] that
    is also returned."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for image, prompt, (i, j) in zip(output.images, output.prompts, output.indices):
        name = sample_name(i, j)
        save_image_atomic(folder / name, image)
        files.append({"file": name, "prompt": prompt})
    write_json_atomic(folder / SETTINGS_NAME, {**record, "images": files})
    return files
