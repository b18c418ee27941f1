"""How the network sits on the flow path: what it is fed, which time value it sees, how its output is scaled and
whether a log-variance is learned for the loss weighting.

Every choice gives the sampler, guidance, solvers and the loss the same thing: `model(y, gamma, ...)` returns the
velocity `eps - x0` at signal level gamma (`y = gamma*x0 + (1-gamma)*eps`, gamma = 1 clean, 0 noise).

- `edm_precond` (MIRO's RIN and mirokit's UNet, the default): the network sees `y * c_in` and the signal level gamma
  itself, its output is multiplied by `c_out` (mirokit.flow.precond), and a per-gamma log-variance u(gamma) may be
  learned for the loss `mse / e^u + u` (EDM2).
- `rectified_flow` (a pretrained diffusers flow-matching transformer: Sana, SD3): the model's own convention,
  sigma = 1 - gamma, `x_t = (1 - sigma)*x0 + sigma*eps` (the same point as y), time value `sigma *
  num_train_timesteps` (1000), output taken as it is (its target eps - x0 has mirokit's sign), no input scaling and
  no learned log-variance: the loss is the plain MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mirokit.flow.precond import input_scale, output_scale

PARAMETRISATIONS = ("edm_precond", "rectified_flow")
"""the names `GeneratorConfig.parametrisation` accepts"""

NUM_TRAIN_TIMESTEPS = 1000.0
"""the time scale of diffusers' flow-matching schedulers (FlowMatchEulerDiscreteScheduler: timestep = sigma*1000)"""


@dataclass(frozen=True)
class Parametrisation:
    """One parametrisation (see the module docstring); build it with `parametrisation(name, ...)`."""

    name: str
    sigma_data: float = 0.5
    """data standard deviation of the EDM scalings (edm_precond only)"""
    learned_uncertainty: bool = True
    """learn u(gamma) for the loss weighting (edm_precond only; rectified_flow never learns one)"""
    num_train_timesteps: float = NUM_TRAIN_TIMESTEPS
    """time value at pure noise (rectified_flow only)"""

    @property
    def learns_logvar(self) -> bool:
        """Whether the generator learns a log-variance u(gamma) (else it reports zeros: the loss is plain MSE)."""
        return self.name == "edm_precond" and self.learned_uncertainty

    def network_input(self, y: Tensor, gamma: Tensor) -> Tensor:
        """y: (B, C, H, W) noisy sample; gamma: (B,) in y's dtype -> what the network is fed, (B, C, H, W)."""
        if self.name == "edm_precond":
            return y * input_scale(gamma, self.sigma_data).view(-1, *([1] * (y.ndim - 1)))
        return y

    def network_time(self, gamma: Tensor, dtype: torch.dtype) -> Tensor:
        """gamma: (B,) signal level -> (B,) the time value the network sees: gamma in `dtype` (edm_precond), or
        `(1 - gamma) * num_train_timesteps` in float32 (rectified_flow: a bf16 timestep would round to 4 steps)."""
        if self.name == "edm_precond":
            return gamma.to(dtype)
        return (1 - gamma.float()) * self.num_train_timesteps

    def velocity(self, out: Tensor) -> Tensor:
        """out: (B, C, H, W) raw network output -> the velocity eps - x0, (B, C, H, W)."""
        if self.name == "edm_precond":
            return out * output_scale(self.sigma_data)
        return out


def check_parametrisation(name: str) -> str:
    """`name` if it is one of PARAMETRISATIONS, else a one-line ValueError listing them."""
    if name not in PARAMETRISATIONS:
        raise ValueError(f"unknown parametrisation {name!r}; known: {', '.join(PARAMETRISATIONS)}")
    return name


def parametrisation(name: str, *, sigma_data: float = 0.5, learned_uncertainty: bool = True,
                    num_train_timesteps: float = NUM_TRAIN_TIMESTEPS) -> Parametrisation:
    """The parametrisation called `name` (edm_precond | rectified_flow); an unknown name is a one-line ValueError."""
    return Parametrisation(check_parametrisation(name), sigma_data, learned_uncertainty, num_train_timesteps)
