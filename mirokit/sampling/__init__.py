"""Sampling: ODE solvers over signal levels, multi-reward guidance, prompt -> image generation."""

from mirokit.sampling.generate import SampleConfig, generate
from mirokit.sampling.guidance import GuidanceConfig, guided_velocity
from mirokit.sampling.solvers import gamma_grid, solve

__all__ = ["SampleConfig", "generate", "GuidanceConfig", "guided_velocity", "gamma_grid", "solve"]
