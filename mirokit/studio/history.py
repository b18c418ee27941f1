"""The studio's history on disk: OUT/history/<job id>/<n>.png (its settings in a PNG text chunk) and job.json.

Every PNG carries the JSON of its settings under the text key `mirokit` (prompt, model, mode, every sampling
setting, the measured scores), so a PNG dropped back on the page restores them (`settings_from_png`). A job's
folder is written when it is done; `entries(client)` lists one client's jobs, newest first.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
import time
import zipfile
from pathlib import Path

from PIL import Image, PngImagePlugin

from mirokit.atomic import process_owner, write_atomic, write_json_atomic

TEXT_KEY = "mirokit"
"""the PNG text chunk holding an image's settings"""
_ID = re.compile(r"^[0-9a-f]{12}$")


def png_bytes(image: Image.Image, settings: dict) -> bytes:
    """The image as PNG with `settings` (JSON) in its `mirokit` text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text(TEXT_KEY, json.dumps(settings, sort_keys=True))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def settings_from_png(data: bytes) -> dict:
    """The settings a studio PNG carries; a file that is not one is a one-line ValueError."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception:  # any undecodable upload
        raise ValueError("not an image mirokit can read") from None
    text = getattr(image, "text", {}).get(TEXT_KEY)
    if text is None:
        raise ValueError("this image carries no mirokit settings (only PNGs saved by the studio or mirokit do)")
    try:
        settings = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("the image's mirokit settings are not valid JSON") from None
    if not isinstance(settings, dict):
        raise ValueError("the image's mirokit settings are not an object")
    return settings



def _owner() -> str:
    """The temporary's owner of a history write: the process and the thread (the server writes from several)."""
    return f"{process_owner()}t{threading.get_ident()}"

class History:
    """Jobs and images of a studio under `root` (created)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> Path:
        """The folder of job `job_id` under root; a malformed id is a ValueError."""
        if not _ID.match(job_id):
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / job_id

    def image_path(self, job_id: str, index: int) -> Path:
        """Path of image `index` of job `job_id` (`NNN.png` in the job's folder)."""
        return self.folder(job_id) / f"{index:03d}.png"

    def write_image(self, job_id: str, index: int, data: bytes) -> str:
        """Store one PNG of a running job; returns its file name."""
        path = self.image_path(job_id, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, _owner())
        return path.name

    def write_job(self, job) -> None:
        """job.json of a finished job (what `entries` lists)."""
        record = {"id": job.id, "client": job.client, "mode": job.mode, "request": job.request,
                  "results": job.results, "created": job.created, "finished": job.finished or time.time(),
                  "starred": []}
        folder = self.folder(job.id)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "job.json", record, _owner(), indent=None)

    def _record(self, job_id: str) -> dict | None:
        try:
            return json.loads((self.folder(job_id) / "job.json").read_text())
        except (OSError, ValueError):
            return None

    def entries(self, client: str) -> list[dict]:
        """The finished jobs of `client`, newest first."""
        records = [r for p in self.root.iterdir() if p.is_dir() and _ID.match(p.name)
                   if (r := self._record(p.name)) is not None and r.get("client") == client]
        return sorted(records, key=lambda r: r.get("finished", 0), reverse=True)

    def owns(self, job_id: str, client: str) -> bool:
        """Whether job `job_id` exists and was made by `client`."""
        record = self._record(job_id) if _ID.match(job_id) else None
        return record is not None and record.get("client") == client

    def star(self, job_id: str, client: str, index: int, starred: bool = True) -> list[int]:
        """Star (or un-star) image `index` of one of `client`'s jobs; returns the job's starred images."""
        record = self._record(job_id) if _ID.match(job_id) else None
        if record is None or record.get("client") != client:
            raise KeyError(f"no job {job_id} in your history")
        stars = set(record.get("starred", []))
        stars = stars | {index} if starred else stars - {index}
        record["starred"] = sorted(stars)
        write_json_atomic(self.folder(job_id) / "job.json", record, _owner(), indent=None)
        return record["starred"]

    def export_zip(self, client: str, starred_only: bool = False) -> bytes:
        """A zip of `client`'s images (PNG with settings) and each job's job.json."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for record in self.entries(client):
                stars = set(record.get("starred", []))
                for result in record.get("results", []):
                    if starred_only and result.get("index") not in stars:
                        continue
                    path = self.folder(record["id"]) / result["file"]
                    if path.is_file():
                        archive.write(path, f"{record['id']}/{result['file']}")
                archive.writestr(f"{record['id']}/job.json", json.dumps(record, indent=1))
        return buffer.getvalue()

    def forget(self, job_id: str) -> None:
        """Remove a job's folder (e.g. a cancelled or failed job's partial images)."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
