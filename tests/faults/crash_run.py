"""Run a mirokit command that dies as under `kill -9` at its N-th write event, or count its write events.

    python crash_run.py EVENTS_FILE N mirokit-arguments...

CRASH_MODE=enospc makes event N fail with OSError(ENOSPC) instead (a full disk: the torn half is written,
then the write raises and the program handles it as it does). N = 0 runs to the end and writes the number of
write events to EVENTS_FILE. Write events: a file opened for writing (the event comes after the open: the file
exists, empty or truncated), every write() to such a file, os.replace / os.rename (before the rename),
pyarrow.parquet.write_table and safetensors' save_file (whole-file writers), in the main thread (TensorBoard's
writer thread is left alone). At event N the process leaves with os._exit(137): nothing is flushed and no
`finally` runs, as after SIGKILL. A write() or whole-file writer that is event N first leaves half of its bytes
on disk (a torn write). Crashing at every event of a run visits every state the output folder can be left in by a
kill between or during Python-level writes.
"""

import builtins
import errno
import io
import os
import sys
import tarfile
import threading

CRASH_EXIT = 137
_count = {"n": 0, "at": 0, "mode": "kill"}
_real_open = builtins.open


def _event(torn=None, path=None) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # TensorBoard's writer thread: its files are not outputs the stages promise (and vary by wall time)
    _count["n"] += 1
    if _count["n"] == _count["at"]:
        if torn is not None:
            torn()
        if _count["mode"] == "enospc":  # the disk is full: the write fails, the program goes on as it handles that
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) if path is not None else None)
        os._exit(CRASH_EXIT)


class _TrackedFile:
    """A file opened for writing whose every write() is an event."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        def torn():
            self._file.write(data[: len(data) // 2])
            self._file.flush()
        _event(torn, getattr(self._file, "name", None))
        return self._file.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __enter__(self):
        self._file.__enter__()
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)

    def __iter__(self):
        return iter(self._file)

    def __getattr__(self, name):
        return getattr(self._file, name)


def _open(file, mode="r", *args, **kwargs):
    handle = _real_open(file, mode, *args, **kwargs)
    if not any(c in mode for c in "wax+"):
        return handle
    try:
        _event(path=file)
    except OSError:
        handle.close()
        raise
    return _TrackedFile(handle)


def _torn_file(path, data: bytes) -> None:
    with _real_open(path, "wb") as fp:
        fp.write(data[: len(data) // 2])


def _install() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import safetensors.torch

    real_replace, real_rename = os.replace, os.rename
    real_write_table, real_save_file = pq.write_table, safetensors.torch.save_file

    def replace(src, dst, **kwargs):
        _event(path=dst)
        return real_replace(src, dst, **kwargs)

    def rename(src, dst, **kwargs):
        _event(path=dst)
        return real_rename(src, dst, **kwargs)

    def write_table(table, where, *args, **kwargs):
        def torn():
            sink = pa.BufferOutputStream()
            real_write_table(table, sink, *args, **kwargs)
            _torn_file(where, sink.getvalue().to_pybytes())
        _event(torn, where)
        return real_write_table(table, where, *args, **kwargs)

    def save_file(tensors, filename, metadata=None):
        _event(lambda: _torn_file(filename, safetensors.torch.save(tensors, metadata=metadata)), filename)
        return real_save_file(tensors, filename, metadata=metadata)

    builtins.open = io.open = tarfile.bltn_open = _open
    os.replace, os.rename = replace, rename
    patched = {id(real_write_table): write_table, id(real_save_file): save_file, id(_real_open): _open}
    pq.write_table, safetensors.torch.save_file = write_table, save_file
    for module in list(sys.modules.values()):  # names bound by `from x import y` before this point
        for name, value in list(getattr(module, "__dict__", {}).items()):
            if id(value) in patched and module.__name__ not in ("builtins", "io", __name__):
                setattr(module, name, patched[id(value)])


def _plant(mutation: str) -> None:
    """A deliberate bug (CRASH_MUTATION), to show the comparison fails on a real one: `copy_not_rename` makes the
    atomic writer's temporaries copied into place instead of renamed (a torn copy looks finished)."""
    if mutation == "copy_not_rename":
        import types

        from mirokit import atomic

        def copy_then_remove(src, dst):
            with _open(src, "rb") as a, _open(dst, "wb") as b:
                b.write(a.read())
            os.remove(src)

        atomic.os = types.SimpleNamespace(**{**vars(os), "replace": copy_then_remove})
    elif mutation:
        raise SystemExit(f"unknown CRASH_MUTATION {mutation!r}")


def main() -> int:
    events_file, at, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    from mirokit.cli.main import main as mirokit_main

    _install()
    _plant(os.environ.get("CRASH_MUTATION", ""))
    _count["at"], _count["mode"] = at, os.environ.get("CRASH_MODE", "kill")
    code = mirokit_main(argv)
    with _real_open(events_file, "w") as fp:
        fp.write(str(_count["n"]))
    return code


if __name__ == "__main__":
    sys.exit(main())
