"""Flow matching math: the signal-level path, time sampling, preconditioning, losses. Pure functions."""

from mirokit.flow.loss import FlowDraw, FlowLossConfig, draw_flow_noise, flow_matching_loss
from mirokit.flow.parametrisation import PARAMETRISATIONS, Parametrisation, parametrisation
from mirokit.flow.path import interpolate, velocity_target, x0_from_velocity
from mirokit.flow.precond import input_scale, output_scale
from mirokit.flow.time import logit_normal_gamma, shift_gamma

__all__ = [
    "FlowDraw", "FlowLossConfig", "draw_flow_noise", "flow_matching_loss", "interpolate", "velocity_target",
    "x0_from_velocity",
    "input_scale", "output_scale", "PARAMETRISATIONS", "Parametrisation", "parametrisation", "logit_normal_gamma",
    "shift_gamma",
]
