"""The reward-target and sampler flags shared by `mirokit sample`, `mirokit generate` and the `mirokit eval`
commands. They are parsed into explicit partial settings; `mirokit.sampling.targets.settings_for` decides what wins
(explicit flag > --preset > the model's defaults > the official sampler)."""

from __future__ import annotations

from mirokit.config import parse_key_values


def add_model_flags(p, *, several: bool = False) -> None:
    """--model (one folder, or NAME=DIR repeatable when `several`), --text-encoder, --vae (and --variant)."""
    if several:
        p.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                       help="a model folder to evaluate, optionally named (repeat for several models side by side)")
    else:
        p.add_argument("--model", required=True,
                       help="model folder (a run's model/, a checkpoints/step_N/, a released MIRO checkpoint) or "
                            "hub id")
        p.add_argument("--variant", default=None,
                       help="subfolder of --model (e.g. miro-no-clip of nicolas-dufour/miro-ablations)")
    p.add_argument("--text-encoder", default=None, help="hub id or local folder replacing the model's T5 encoder")
    p.add_argument("--vae", default=None, help="hub id or local folder replacing the model's VAE")
    add_dtype_flag(p)


def add_dtype_flag(p) -> None:
    """--dtype fp32 | bf16: the generator's weights while sampling (samples come back in float32)."""
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                   help="the generator's weights while sampling: fp32 (default) or bf16 (faster where the device "
                        "has native bf16; images differ slightly)")


def model_dtype(args):
    """The torch dtype of --dtype (None for fp32: keep the weights as they are)."""
    from mirokit.dtypes import dtype_named

    name = getattr(args, "dtype", "fp32")
    return None if name == "fp32" else dtype_named(name, "--dtype")


def add_sampling_flags(p, *, targets: bool = True) -> None:
    """--preset, a flag per sampling setting (declared once in mirokit.sampling.settings.SamplingSettings; the
    --reward/--negative-reward targets with `targets`) and --device."""
    from mirokit.sampling import SamplingSettings
    from mirokit.sampling.options import add_arguments

    p.add_argument("--preset", default=None, metavar="NAME_OR_FILE",
                   help="sampling preset: a built-in name (official = Euler, 50 steps, guidance 7; fast = AB2, "
                        "6 steps, measured on the demo model) or a JSON settings file such as the one `mirokit eval "
                        "tune-targets` writes; explicit flags override it")
    add_arguments(p, SamplingSettings, targets=targets)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")


def explicit_settings(args) -> dict:
    """The sampling settings given on the command line (argparse namespace of add_sampling_flags), as a partial
    settings dict (unset flags are None)."""
    from mirokit.sampling import SamplingSettings
    from mirokit.sampling.options import explicit_from_args

    return explicit_from_args(args, SamplingSettings, parse_key_values)

