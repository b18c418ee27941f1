"""webdataset tar shards: members grouped by sample key, random access by index, atomic writing.

A shard holds samples as members `{key}.{ext}` (`0001.jpg`, `0001.txt`, `0001.json`,
`0001.latent.safetensors`, ...): the key is the member name up to its first dot, the extension the
rest. Used by the scoring job (reading), the encoding job (reading and writing) and the training
reader of encoded shards (random access).

A shard to read is a local path or a URL (mirokit.urls: http(s)://, s3://, gs://, hf://, memory://, file://,
pipe:CMD). A URL is read as a stream, once, front to back, without a local copy; a failed download is retried
whole and then reported as one `download failed` entry. Random access (`index_members`) and writing are local.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from mirokit.atomic import move_into_place, process_owner, remove_temporary, temporary_path
from mirokit.urls import DownloadError, ForwardReader, check_protocol, is_url, list_folder, url_name, with_retries

log = logging.getLogger(__name__)
DOWNLOAD_FAILED = "download failed"
"""the error kind of a shard that could not be downloaded (after retries): its unit is not marked done"""


def expand_braces(pattern: str) -> list[str]:
    """Brace patterns as img2dataset writes them: "a-{000..003}.tar", "{x,y}.tar" (nested allowed)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    head, tail, body = pattern[:m.start()], pattern[m.end():], m.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.group(1), rng.group(2)
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    return [p for opt in options for p in expand_braces(head + opt + tail)]


def shard_list(spec: str | Path) -> list:
    """The .tar shards named by `spec`: a folder (its *.tar, sorted), a folder URL ending in "/" (its *.tar, as
    fsspec lists it) or a (brace) pattern of files or URLs. Local shards come back as Path (a missing one is an
    error here), URLs as str (each must name a .tar file; a missing one is found when it is read: one
    `download failed` entry)."""
    if is_url(str(spec)):
        spec = str(spec)
        check_protocol(spec)
        if spec.endswith("/") and not spec.startswith("pipe:"):
            urls = list_folder(spec)
            if not urls:
                raise FileNotFoundError(f"no .tar shards in {spec}")
            return urls
        urls = expand_braces(spec)
        for url in urls:  # outputs are named after it: it must be a file name
            if not url_name(url).lower().endswith(".tar") or url_name(url).startswith("."):
                raise ValueError(f"{url}: a shard URL must name a .tar file (for pipe:, a word of the command)")
        return urls
    path = Path(spec)
    if path.is_dir():
        paths = sorted(path.glob("*.tar"))
        if not paths:
            raise FileNotFoundError(f"no .tar shards in {path}")
        return paths
    paths = [Path(p) for p in expand_braces(str(spec))]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"shard not found: {missing[0]}")
    return paths


def shard_name(source: str | Path) -> str:
    """The file name of a shard: "/data/a/x.tar" and "https://host/a/x.tar?sig=..." -> "x.tar"."""
    return url_name(source) if is_url(str(source)) else Path(source).name


def split_member(name: str) -> tuple[str, str]:
    """"dir/0001.latent.safetensors" -> ("dir/0001", "latent.safetensors")."""
    path = Path(name)
    key, _, ext = path.name.partition(".")
    parent = path.parent
    return (str(parent / key) if parent != Path(".") else key), ext.lower()


def _files(tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, str, str]]:
    """(member, sample key, extension) of every regular file of an open archive, in order."""
    for member in tar:
        if member.isfile():
            key, ext = split_member(member.name)
            yield member, key, ext


def iter_samples(source: str | Path) -> Iterator[tuple[str, dict[str, bytes], str]]:
    """(key, {ext: bytes}, error) per sample, in shard order, of a local shard or a URL. A member that cannot be
    read, or a second member of the same name (which would silently replace the first), sets the sample's error;
    a truncated or corrupt archive yields what was read, then one `#corrupt` entry (kind `corrupt tar`). A URL
    whose download fails (retried, mirokit.urls.with_retries) yields only one `#download` entry (kind
    `download failed`, naming the URL), and the line is logged."""
    try:
        order, groups, errors = with_retries(str(source), lambda: _read_samples(source))
    except DownloadError as err:
        log.warning("%s", err.line())
        key = f"{shard_name(source)}#download"
        order, groups, errors = [key], {key: {}}, {key: err.line()}
    for key in order:
        yield key, groups[key], errors.get(key, "")


def _read_samples(source: str | Path) -> tuple[list[str], dict[str, dict[str, bytes]], dict[str, str]]:
    """One read of a whole shard: (keys in order, members by key, errors by key). DownloadError passes through."""
    groups: dict[str, dict[str, bytes]] = {}
    errors: dict[str, str] = {}
    order: list[str] = []
    stream = None
    try:
        try:
            stream = ForwardReader(str(source)) if is_url(str(source)) else open(source, "rb")
            with tarfile.open(fileobj=stream, mode="r") as tar:
                for member, key, ext in _files(tar):
                    if key not in groups:
                        groups[key] = {}
                        order.append(key)
                    if ext in groups[key]:
                        errors.setdefault(key, f"duplicate tar member {member.name}")
                        continue
                    try:
                        groups[key][ext] = tar.extractfile(member).read()
                    except (tarfile.TarError, OSError) as err:
                        errors[key] = f"unreadable tar member {member.name}: {err}"
                tar.fileobj.seek(tar.offset)  # tarfile ends quietly at a cut or garbage header: check the end marker
                if tar.fileobj.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
                    raise tarfile.ReadError("no end-of-archive block (cut short, or garbage after the last member)")
        except (tarfile.TarError, OSError, EOFError) as err:
            order.append(f"{shard_name(source)}#corrupt")
            groups[order[-1]] = {}
            message = " ".join(str(err).split())  # tarfile lists one line per compression it tried
            errors[order[-1]] = f"corrupt tar: {source}: {message}"  # kind "corrupt tar" in the manifests
        if isinstance(stream, ForwardReader):
            stream.drain()  # to the end: a cut download is a DownloadError (retried), not a corrupt tar
    finally:
        if stream is not None:
            stream.close()
    return order, groups, errors


MAX_CAPTION_CHARS = 20_000
"""a longer caption is refused (counted as a bad caption): no text encoder reads that far, and it is not a
caption (a page's text, a binary file)"""


class CaptionError(ValueError):
    """A caption that is present but unusable: not UTF-8, or longer than MAX_CAPTION_CHARS."""


def utf8_text(text: str) -> bool:
    """False for a str holding a lone surrogate (a JSON "\\ud800" escape): no text encoder or writer takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def caption_of(parts: dict[str, bytes], name: str = "") -> str | None:
    """A sample's caption: `{key}.txt` (or `{key}.NAME.txt` for a named caption such as "synthetic"), else
    the .json's "caption" (or "NAME_caption") field, stripped; None if absent or only whitespace. A caption
    that is not UTF-8 (e.g. latin-1 bytes) or longer than MAX_CAPTION_CHARS raises CaptionError: batch jobs
    count it as a bad caption instead of scoring replacement characters."""
    ext, field = (f"{name}.txt", f"{name}_caption") if name else ("txt", "caption")
    label = f"{name} caption" if name else "caption"
    value = None
    if ext in parts:
        try:
            value = parts[ext].decode("utf-8")
        except UnicodeDecodeError:
            raise CaptionError(f"{label} not UTF-8") from None
    elif "json" in parts:
        try:
            value = json.loads(parts["json"]).get(field)
        except (ValueError, AttributeError, RecursionError):  # RecursionError: JSON nested thousands deep
            return None
        value = value if isinstance(value, str) else None
    if value is None or not value.strip():
        return None
    if not utf8_text(value):
        raise CaptionError(f"{label} not UTF-8 (a lone surrogate)")
    if len(value) > MAX_CAPTION_CHARS:
        raise CaptionError(f"{label} too long: {len(value)} characters (at most {MAX_CAPTION_CHARS})")
    return value.strip()


def index_members(path: str | Path) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """[(key, {ext: (data offset, size)})] of a local shard, in order, without reading member data."""
    out: list[tuple[str, dict[str, tuple[int, int]]]] = []
    position: dict[str, int] = {}
    with tarfile.open(path, "r") as tar:
        for member, key, ext in _files(tar):
            if key not in position:
                position[key] = len(out)
                out.append((key, {}))
            out[position[key]][1][ext] = (member.offset_data, member.size)
    return out


class ShardWriter:
    """Write samples into a tar at `path` atomically: a hidden temporary file renamed on `close()`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_path(self.path, process_owner())  # writers remove a killed run's (stale_temporaries)
        self.tar = tarfile.open(self.tmp, "w")

    def write(self, key: str, parts: dict[str, bytes]) -> None:
        """Add members `{key}.{ext}` for every (ext, bytes) of `parts`."""
        for ext, data in parts.items():
            self.add(f"{key}.{ext}", data)

    def add(self, name: str, data: bytes) -> None:
        """Add one member `name`."""
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> Path:
        """Finish the archive and move it into place; returns its path."""
        self.tar.close()
        return move_into_place(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file (nothing is written at `path`)."""
        self.tar.close()
        remove_temporary(self.tmp)


def copy_shard(source: str | Path, out: str | Path, edit, extra) -> Path:
    """Copy the tar `source` (a local path, or a URL: read again, with retries; DownloadError if that fails) to
    `out` atomically, member by member: `edit(name, data)` returns the bytes to write (None drops the member);
    then the members `extra()` returns ({name: bytes}, asked once every member was edited) are appended."""
    if is_url(str(source)):
        members = with_retries(str(source), lambda: _read_members(str(source)))
    writer = ShardWriter(out)
    try:
        if is_url(str(source)):
            for name, data in members:
                if (data := edit(name, data)) is not None:
                    writer.add(name, data)
        else:
            with tarfile.open(source, "r") as src:
                for member in src:
                    if member.isfile() and (data := edit(member.name, src.extractfile(member).read())) is not None:
                        writer.add(member.name, data)
        for name, data in extra().items():
            writer.add(name, data)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _read_members(url: str) -> list[tuple[str, bytes]]:
    """(name, bytes) of every regular file of the tar at `url`, in order (one read; DownloadError passes)."""
    with ForwardReader(url) as stream:
        with tarfile.open(fileobj=stream, mode="r") as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
        stream.drain()
    return members
