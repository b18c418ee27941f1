"""mirokit: MIRO, multi-reward conditioned pretraining for text-to-image generators.

`from mirokit import MiroPipeline` (loaded on first use, so `import mirokit` stays light)."""

__version__ = "0.1.0"

__all__ = ["MiroPipeline", "MiroPipelineOutput", "__version__"]


def __getattr__(name: str):
    if name in ("MiroPipeline", "MiroPipelineOutput"):
        from mirokit import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'mirokit' has no attribute {name!r}")
