"""Shards where they live: local paths and URLs, opened as forward-only byte streams with retries.

A URL is `SCHEME://...` for any protocol fsspec knows (`http(s)://` with aiohttp, `s3://` with s3fs, `gs://` with
gcsfs, `hf://` with huggingface_hub, `memory://`, `file://`) or `pipe:CMD` (a shell command whose standard output
is the shard, through webdataset's `gopen`). Nothing is copied to disk: a shard is read once, front to back
(`open_url`), with a look-back of WINDOW bytes so that Python's tarfile can re-read a header block. A transport
failure (connection refused or dropped, an HTTP error status, a body shorter than announced, a command exiting
non-zero) raises `DownloadError`, which callers retry whole with `with_retries` (RETRIES tries, waits of
BACKOFF_S, 2 * BACKOFF_S, ...). `fetch` downloads a URL to a local file (for the random-access training reader).

This module imports nothing from mirokit but mirokit.atomic (its one file writer); fsspec, aiohttp and webdataset
are imported only when a URL is opened.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from mirokit.atomic import atomic_path, process_owner

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIES = 3
"""tries per shard (the first included) before it is counted as a failed download"""
BACKOFF_S = 1.0
"""wait before the second try; doubled before each further one"""
CHUNK = 1 << 20
"""bytes asked of the transport per read"""
WINDOW = 64 << 10
"""bytes kept behind the read position: tarfile seeks back over a header it read (its end-of-archive check, the
compression probe of mode "r:*")"""
READ_TIMEOUT_S = 60.0
"""an http(s) connection that sends nothing for this long fails (and is retried); there is no limit on a whole
shard's download time"""
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


class DownloadError(Exception):
    """A shard could not be read from where it lives. Deliberately not an OSError: tar readers count an OSError
    as a corrupt archive, while this is retried and then counted as a failed download.

    Attributes: url, reason (one line), retry (False for "not found": trying again will not help), tries."""

    def __init__(self, url: str, reason: str, retry: bool = True):
        self.url, self.reason, self.retry, self.tries = url, reason, retry, 1
        super().__init__(f"{url}: {reason}")

    def line(self) -> str:
        """'download failed: URL: reason (N tries)': the error kind `download failed` of the manifests."""
        return f"download failed: {self.url}: {self.reason} ({self.tries} {'try' if self.tries == 1 else 'tries'})"


def is_url(spec) -> bool:
    """True for `SCHEME://...` (a scheme of two characters or more: `C:/x` stays a path) and `pipe:CMD`."""
    return isinstance(spec, str) and (spec.startswith("pipe:") or bool(_URL.match(spec)))


def url_name(url: str) -> str:
    """The file name a URL names: the last part of its path ("https://h/a/x.tar?sig=1" -> "x.tar"); for
    `pipe:CMD`, the last word of the command ending in .tar (else its last word)."""
    if url.startswith("pipe:"):
        words = [w.strip("'\";|&()<>") for w in url[5:].split()]
        names = [url_name(w) if is_url(w) else w.rstrip("/").rsplit("/", 1)[-1] for w in words]
        return ([n for n in names if n.endswith(".tar")] or names or [""])[-1]
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def check_protocol(url: str) -> None:
    """Fail early, in one line, when the package that reads `url`'s protocol is missing (aiohttp for http(s)://,
    s3fs for s3://, webdataset for pipe:, ...) or the protocol is unknown: otherwise every shard would be a failed
    download. The packages: the `urls` extra (fsspec[http], webdataset), s3fs, gcsfs."""
    protocol = "pipe" if url.startswith("pipe:") else url.split("://", 1)[0].lower()
    hints = {"http": "'mirokit[urls]' (aiohttp)", "https": "'mirokit[urls]' (aiohttp)", "s3": "s3fs", "gs": "gcsfs",
             "gcs": "gcsfs", "pipe": "'mirokit[urls]' (webdataset)"}
    try:
        if protocol == "pipe":
            import webdataset.gopen  # noqa: F401 - only checks that webdataset is installed
            return
        import fsspec

        fsspec.get_filesystem_class(protocol)
        if protocol in ("http", "https"):
            import aiohttp  # noqa: F401 - fsspec imports it only when the first file is opened
    except (ImportError, ValueError) as err:
        hint = f" (pip install {hints[protocol]})" if protocol in hints else ""
        raise ValueError(f"cannot read {url}: {' '.join(str(err).split())}{hint}") from None


def _options(protocol: str) -> dict:
    """fsspec open options per protocol: one streaming GET for http(s) and hf (block_size 0), with a read timeout
    instead of aiohttp's 5-minute limit on the whole request; the others read ahead in blocks (range requests)."""
    if protocol in ("http", "https"):
        import aiohttp
        import fsspec.config

        client = dict(fsspec.config.conf.get(protocol, {}).get("client_kwargs", {}))  # a user's fsspec config stays
        client.setdefault("timeout", aiohttp.ClientTimeout(total=None, sock_connect=READ_TIMEOUT_S,
                                                           sock_read=READ_TIMEOUT_S))
        return {"block_size": 0, "client_kwargs": client}
    return {"block_size": 0} if protocol == "hf" else {}


def _reason(err: BaseException) -> tuple[str, bool]:
    """(one-line reason, worth retrying) of a transport exception: the innermost cause decides."""
    root = err
    while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
        root = root.__cause__ or root.__context__
    status = getattr(root, "status", None)
    exited = re.search(r"\bexit (\d+) \(read\)", str(root))  # webdataset's Pipe
    if isinstance(status, int) and status >= 400:
        text = f"HTTP {status} {getattr(root, 'message', '')}".strip()
    elif exited:
        text = f"the command exited with status {exited.group(1)}"
    elif isinstance(getattr(root, "code", None), int) and getattr(root, "message", None):  # aiohttp's payload errors
        text = f"{type(root).__name__}: {root.message}"
    else:
        text = f"{type(root).__name__}: {root}" if str(root) else type(root).__name__
    missing = status == 404 or isinstance(root, FileNotFoundError)
    return " ".join(text.split())[:300], not missing


def _raw(url: str):
    """The transport's file object of `url` (fsspec, or webdataset's Pipe for pipe:)."""
    if url.startswith("pipe:"):
        from webdataset.gopen import gopen

        return gopen(url, "rb")
    import fsspec

    return fsspec.open(url, "rb", **_options(url.split("://", 1)[0].lower())).open()


class ForwardReader:
    """A URL's bytes read front to back: `read`, `tell`, `seek` forward (skipping) or back by at most WINDOW
    bytes. Transport errors raise DownloadError; at the end of the stream the transport is closed and checked
    (a pipe's exit status, an http body shorter than its Content-Length), so a cut download never looks like a
    short file."""

    def __init__(self, url: str):
        self.url = url
        try:
            self.raw = _raw(url)
        except Exception as err:  # every transport raises its own types
            raise DownloadError(url, *_reason(err)) from None
        self.buf = bytearray()  # bytes [base, base + len(buf)) of the stream
        self.base = self.pos = 0
        self.eof = False

    def _fill(self, end: float) -> None:
        """Read from the transport until the buffer reaches `end` (or the stream ends)."""
        while self.base + len(self.buf) < end and not self.eof:
            try:
                chunk = self.raw.read(CHUNK)
            except Exception as err:
                raise DownloadError(self.url, *_reason(err)) from None
            if not chunk:
                self.eof = True
                self._close(check=True)
                break
            self.buf += chunk
            drop = min(self.pos - WINDOW - self.base, len(self.buf))
            if drop > 0:
                del self.buf[:drop]
                self.base += drop

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all the rest for n < 0) from the current position."""
        self._fill(float("inf") if n is None or n < 0 else self.pos + n)
        start = self.pos - self.base
        with memoryview(self.buf) as view:  # one copy; the view is let go before the buffer changes size
            data = bytes(view[start:] if n is None or n < 0 else view[start:start + n])
        self.pos += len(data)
        return data

    def tell(self) -> int:
        """The current position."""
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to `offset` (whence 0) or by it (whence 1); back at most WINDOW bytes."""
        target = offset if whence == 0 else self.pos + offset if whence == 1 else None
        if target is None or target < self.base:
            raise OSError(f"{self.url}: a stream cannot seek there (back {self.pos - (target or 0)} bytes)")
        self.pos = target
        return self.pos

    def readable(self) -> bool:
        """True: the stream can be read (the io protocol's question)."""
        return True

    def seekable(self) -> bool:
        """False: it seeks only forward or back by at most WINDOW bytes, so readers must stream it."""
        return False

    def drain(self) -> None:
        """Read the rest of the stream (a tar's padding after its end blocks), so the transport reports how it
        ended: a pipe's exit status, a cut connection."""
        while not self.eof:
            self.pos = self.base + len(self.buf)
            self._fill(self.pos + CHUNK)

    def _close(self, check: bool) -> None:
        raw, self.raw = self.raw, None
        if raw is None:
            return
        try:
            raw.close()
        except Exception as err:  # a pipe: command that exited non-zero raises here
            if check:
                raise DownloadError(self.url, *_reason(err)) from None

    def close(self) -> None:
        """Let go of the transport (errors ignored: the read is over)."""
        self._close(check=False)

    def __enter__(self) -> ForwardReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def with_retries(url: str, attempt: Callable[[], T]) -> T:
    """`attempt()` until it returns without DownloadError: at most RETRIES tries, BACKOFF_S * 2**k apart; "not
    found" is not retried. The last DownloadError is raised with its `tries` set."""
    for k in range(1, RETRIES + 1):
        try:
            return attempt()
        except DownloadError as err:
            err.tries = k
            if not err.retry or k == RETRIES:
                raise
            log.info("retrying %s (try %d of %d failed: %s)", url, k, RETRIES, err.reason)
            time.sleep(BACKOFF_S * 2 ** (k - 1))
    raise AssertionError("unreachable")


def list_folder(url: str, suffix: str = ".tar") -> list[str]:
    """The URLs of the files ending in `suffix` in the folder `url` (ending in "/"), sorted by name: an object
    store's listing (s3, gs, hf, memory, file) or the links of an http(s) index page."""
    import fsspec

    protocol = url.split("://", 1)[0].lower()
    options = {k: v for k, v in _options(protocol).items() if k != "block_size"}
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
        found = {fs.unstrip_protocol(p) if not is_url(p) else p for p in fs.ls(root, detail=False)}
    except Exception as err:
        raise FileNotFoundError(f"cannot list {url}: {_reason(err)[0]}") from None
    return sorted((p for p in found if p.rstrip("/").endswith(suffix)), key=url_name)


def fetch(url: str, dest: str | Path, missing_ok: bool = False) -> Path | None:
    """Download `url` to the file `dest` (through a temporary name, then renamed: an existing `dest` is a complete
    earlier download and is kept). Retried as `with_retries`; a failure raises DownloadError; with `missing_ok`,
    a URL that does not exist returns None."""
    dest = Path(dest)
    if dest.is_file():
        return dest

    def once() -> Path:
        # ranks may fetch the same URL into one cache at once: a temporary each; a failure removes it
        with atomic_path(dest, process_owner()) as tmp, ForwardReader(url) as src, open(tmp, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
        return dest

    try:
        return with_retries(url, once)
    except DownloadError as err:
        if missing_ok and not err.retry:
            return None
        raise
