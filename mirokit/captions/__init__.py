"""Synthetic captions: captioners (a registry: any transformers VLM, and plugins' own such as the shapes world's
detector captioner) and the resumable `mirokit recaption` job that writes them beside the original captions."""

from mirokit.captions.registry import CAPTIONERS, Captioner, build_captioner

__all__ = ["CAPTIONERS", "Captioner", "build_captioner"]
