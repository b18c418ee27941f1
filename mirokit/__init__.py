"""mirokit: MIRO, multi-reward conditioned pretraining for text-to-image generators."""

__version__ = "0.1.0"
