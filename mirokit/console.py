"""What a command leaves on the terminal when it fails: one line, after the progress bars it left open."""

from __future__ import annotations


def error_line(err: BaseException) -> str:
    """The one line a command prints for `err`: its message's first line (else the error's type); a failed read or
    write (an OSError with errno, e.g. a full disk) as "STRERROR: FILENAME"."""
    text = str(err).strip()
    message = text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, OSError) and err.errno and err.strerror:
        message = f"{err.strerror}" + (f": {err.filename}" if err.filename else "")
    return message


def close_progress_bars() -> None:
    """Close the progress bars an error left open, so that the error is the last line (not a bar redrawn after)."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def columns(rows: dict[str, str], width: int = 22) -> str:
    """{name: text} as lines "NAME<padded to width> TEXT" (a listing such as `mirokit score --list`)."""
    return "\n".join(f"{name:{width}s} {text}" for name, text in rows.items())
