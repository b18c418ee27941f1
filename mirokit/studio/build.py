"""A Studio from plain values (what `mirokit studio` parses): the models loaded, named, with their variants,
the example prompts and the per-request limits."""

from __future__ import annotations

from pathlib import Path

LIMIT_FLAGS = {"max_images": "--max-images", "max_steps": "--max-steps", "max_points": "--max-points",
               "max_queued": "--max-queued"}


def model_loads(sources: dict[str, str], variants: list[str] | None) -> dict[str, tuple[str, str | None]]:
    """{name: (folder or hub id, variant)} to load: each source as it is, or, with several variants, every variant
    of the one source, named after the variant (several variants need exactly one source: a one-line error)."""
    variants = variants or [None]
    if len(variants) > 1 and len(sources) > 1:
        raise ValueError("several --variant values need exactly one MODEL (the repository holding them)")
    if len(variants) > 1:
        (path,) = sources.values()
        return {variant: (path, variant) for variant in variants}
    return {name: (path, variants[0]) for name, path in sources.items()}


def read_examples(path: str | Path | None) -> list[str] | None:
    """The example prompts of a text file, one per non-empty line (None without a file; a file without any is a
    one-line error)."""
    if not path:
        return None
    examples = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not examples:
        raise ValueError(f"--examples {path}: no prompts in the file")
    return examples


def build_studio(sources: dict[str, str], out_dir: str | Path, *, variants: list[str] | None = None,
                 device: str = "auto", text_encoder: str | None = None, vae: str | None = None, torch_dtype=None,
                 dtype: str = "fp32", scorer_options: dict | None = None, examples: str | Path | None = None,
                 max_images: int = 16, max_steps: int = 100, max_points: int = 9, max_queued: int = 4):
    """The Studio of `sources` {name: folder or hub id} (see model_loads for `variants`), every model loaded on
    `device` with its generator in `torch_dtype` (`dtype`: its name, "fp32" or "bf16", for "copy as CLI"); the
    history goes to OUT_DIR/history; `examples`: a text file of example prompts. A limit below 1 is a one-line
    error naming its flag."""
    from mirokit.distributed import resolve_device
    from mirokit.pipeline import MiroPipeline
    from mirokit.studio.requests import Limits
    from mirokit.studio.session import Studio

    limits = {"max_images": max_images, "max_steps": max_steps, "max_points": max_points, "max_queued": max_queued}
    for name, value in limits.items():
        if value < 1:
            raise ValueError(f"{LIMIT_FLAGS[name]} must be >= 1")
    loads = model_loads(sources, variants)
    device = str(resolve_device(device))
    models = {name: MiroPipeline.from_pretrained(path, variant=variant, device=device, text_encoder=text_encoder,
                                                 vae=vae).to(dtype=torch_dtype)
              for name, (path, variant) in loads.items()}
    return Studio(models, out_dir, sources={name: path for name, (path, _) in loads.items()},
                  variants={name: variant for name, (_, variant) in loads.items() if variant},
                  scorer_options=scorer_options, examples=read_examples(examples),
                  limits=Limits(max_images=max_images, max_steps=max_steps, max_points=max_points),
                  max_queued_per_client=max_queued, dtype=dtype)
