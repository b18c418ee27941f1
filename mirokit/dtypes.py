"""The one dtype vocabulary of mirokit: fp32, bf16, fp16 (configs, command-line flags, scorer and encoder options,
stored `encoding.json` files).

torch's own names (float32, bfloat16, float16) are read as aliases, so config.json files written before the
vocabulary was one keep loading; they are normalised to the short names. torch is imported only when a name is
turned into a torch dtype.
"""

from __future__ import annotations

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""the vocabulary: short name -> the torch.dtype attribute (whose name is also accepted as an alias)"""


def dtype_name(name: str, where: str = "dtype") -> str:
    """A dtype name of the vocabulary or its torch alias -> the short name ("bfloat16" -> "bf16"); anything else
    is a one-line ValueError naming `where` (the flag or config key)."""
    if name in DTYPES:
        return name
    for short, long in DTYPES.items():
        if name == long:
            return short
    raise ValueError(f"{where}: unknown dtype {name!r}; known: {', '.join(DTYPES)}")


def dtype_named(name: str, where: str = "dtype"):
    """A dtype name of the vocabulary (or its torch alias) -> the torch.dtype; anything else is a one-line
    ValueError naming `where`."""
    import torch

    return getattr(torch, DTYPES[dtype_name(name, where)])
