"""Sampling: one settings type and its resolver, ODE solvers (a table), multi-reward guidance, the noise rule,
prompts -> samples."""

from mirokit.sampling.generate import generate, generate_pairs
from mirokit.sampling.guidance import guided_velocity
from mirokit.sampling.noise import image_seed, initial_noise, prompt_major_pairs
from mirokit.sampling.settings import SamplingSettings, check_partial, resolve
from mirokit.sampling.solvers import SOLVERS, SamplingCancelled, StepProgress, gamma_grid, solve, solver

__all__ = ["SOLVERS", "SamplingCancelled", "SamplingSettings", "StepProgress", "check_partial", "gamma_grid",
           "generate", "generate_pairs", "guided_velocity", "image_seed", "initial_noise", "prompt_major_pairs",
           "resolve", "solve", "solver"]
