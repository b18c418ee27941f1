"""The captioner registry: kind -> a class taking keyword options, with `caption(images, hints) -> captions`."""

from __future__ import annotations

from typing import Any, Protocol

from mirokit.registry import Registry


class Captioner(Protocol):
    """What every captioner provides."""

    def caption(self, images: list, hints: list[str | None], *, short: bool = False) -> list[str]:
        """N PIL images (+ N original captions as hints, or None) -> N captions (the short form with `short`)."""

    def describe(self) -> dict:
        """What produced the captions (model, instruction, generation settings), for the manifest."""


CAPTIONERS: Registry = Registry("captioner", "mirokit.captions")
"""captioner kind -> class or factory called with keyword options (`mirokit recaption --captioner KIND`)"""


def build_captioner(kind: str, **options: Any) -> Captioner:
    """Instantiate the captioner `kind`; an unknown kind or option is a one-line error."""
    factory = CAPTIONERS.get(kind)
    try:
        return factory(**options)
    except TypeError as err:
        raise ValueError(f"captioner {kind!r}: {err}") from None
