"""The reward-target and sampler flags shared by `mirokit sample`, `mirokit generate` and the `mirokit eval`
commands, and their resolution: explicit flag > --preset > the model's released defaults > built-in defaults."""

from __future__ import annotations

from dataclasses import dataclass

from mirokit.sampling.presets import parse_number


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, float | None]:
    """["k=0.5", "j=nan"] -> {"k": 0.5, "j": None}; malformed items raise a one-line ValueError."""
    out: dict[str, float | None] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {item!r} must look like KEY=VALUE")
        out[key] = parse_number(raw, f"{flag} {item!r}", allow_missing=True)
    return out


def parse_named(items: list[str] | None, flag: str) -> dict[str, str]:
    """["miro=runs/miro/model", "runs/base/model"] -> {"miro": ..., "model": ...} (a bare path is named after
    its folder, or its parent's when the folder is called model); duplicate names are an error."""
    from pathlib import Path

    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            path = Path(item.rstrip("/"))
            name, value = (path.parent.name if path.name == "model" and path.parent.name else path.name), item
        if not name or not value:
            raise ValueError(f"{flag} {item!r} must look like NAME=PATH or PATH")
        if name in out:
            raise ValueError(f"{flag}: the name {name!r} is given twice")
        out[name] = value
    return out


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


def add_sampling_flags(p, *, targets: bool = True) -> None:
    """--preset, --reward/--negative-reward (with `targets`), --steps, --guidance, --text-guidance,
    --reward-guidance, --solver, --shift, --seed, --batch-size, --device."""
    from mirokit.sampling.solvers import SOLVERS

    p.add_argument("--preset", default=None, metavar="NAME_OR_FILE",
                   help="sampling preset: a built-in name (official = Euler, 50 steps, guidance 7; fast = AB2, "
                        "6 steps, measured on the demo model) or a JSON settings file such as the one `mirokit eval tune-targets` writes; explicit flags override it")
    if targets:
        p.add_argument("--reward", action="append", metavar="KEY=VALUE",
                       help="positive reward target in [0,1] (repeatable; unspecified rewards get 1.0; nan = missing)")
        p.add_argument("--negative-reward", action="append", metavar="KEY=VALUE",
                       help="target of the negative (unconditional) branch (repeatable; default 0.0 for every reward)")
    p.add_argument("--steps", type=int, default=None,
                   help="ODE steps (default: the preset's, else the model's released default, else 50)")
    p.add_argument("--guidance", type=float, default=None,
                   help="joint text+reward guidance scale w (default: the preset's, else the model's released "
                        "default, else 7)")
    p.add_argument("--text-guidance", type=float, default=None,
                   help="separate text guidance scale (use with --reward-guidance; replaces --guidance)")
    p.add_argument("--reward-guidance", type=float, default=None,
                   help="separate reward guidance scale (use with --text-guidance)")
    p.add_argument("--solver", choices=list(SOLVERS), default=None,
                   help="ODE solver (default: the preset's, else euler); network calls per step: heun ~2, midpoint 2, "
                        "the others 1")
    p.add_argument("--shift", type=float, default=None,
                   help="time shift of the signal-level grid (default: the preset's, else 1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward batch (default 16)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")


@dataclass(kw_only=True)
class Sampling:
    """Resolved sampling settings of one command."""

    rewards: dict
    """positive targets {key: value or None} (flags over preset)"""
    negative_rewards: dict
    """negative-branch targets {key: value or None}"""
    cfg: object
    """the SampleConfig"""
    preset: str | None
    """the --preset given, if any"""

    def settings(self) -> dict:
        """A JSON record of every setting (for settings.json / summaries)."""
        g = self.cfg.guidance
        return {"preset": self.preset, "rewards": self.rewards, "negative_rewards": self.negative_rewards,
                "solver": self.cfg.solver, "steps": self.cfg.steps, "shift": self.cfg.shift, "guidance": g.scale,
                "text_guidance": g.text_scale, "reward_guidance": g.reward_scale, "seed": self.cfg.seed}


def _first(*values):
    return next(v for v in values if v is not None)


def resolve_device(name: str) -> str:
    """"auto" -> cuda if available else cpu; anything else as given."""
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def resolve_sampling(args, defaults: dict | None = None) -> Sampling:
    """Flags (argparse namespace of add_sampling_flags) + preset + the model's `sampler_defaults` -> Sampling.

    Any guidance flag given replaces all of the preset's guidance settings (joint or separate)."""
    from mirokit.sampling import GuidanceConfig, SampleConfig
    from mirokit.sampling.presets import SamplingPreset, load_preset

    preset = load_preset(args.preset) if args.preset else SamplingPreset()
    defaults = defaults or {}
    flagged = any(v is not None for v in (args.guidance, args.text_guidance, args.reward_guidance))
    source = args if flagged else preset
    scale = _first(source.guidance, defaults.get("guidance"), 7.0)
    steps = _first(args.steps, preset.steps, defaults.get("steps"), 50)
    if steps < 1 or args.batch_size < 1:
        raise ValueError("--steps and --batch-size must be >= 1")
    if args.seed < 0:
        raise ValueError("--seed must be >= 0")
    shift = _first(args.shift, preset.shift, 1.0)
    if shift <= 0:
        raise ValueError("--shift must be > 0")
    guidance = GuidanceConfig(scale=scale, text_scale=source.text_guidance, reward_scale=source.reward_guidance)
    cfg = SampleConfig(steps=steps, solver=_first(args.solver, preset.solver, "euler"), shift=shift,
                       guidance=guidance, seed=args.seed, batch_size=args.batch_size)
    rewards = {**(preset.rewards or {}), **parse_key_values(getattr(args, "reward", None), "--reward")}
    negative = {**(preset.negative_rewards or {}),
                **parse_key_values(getattr(args, "negative_reward", None), "--negative-reward")}
    return Sampling(rewards=rewards, negative_rewards=negative, cfg=cfg, preset=args.preset)


def targets_for(reward_keys: list[str], targets: dict) -> dict:
    """The targets a model with `reward_keys` can take: keys it does not know are dropped (a reward-free
    baseline ignores every target); callers check that each key is known to at least one model."""
    return {k: v for k, v in targets.items() if k in reward_keys}


def check_targets_known(targets: dict, keys_by_model: dict[str, list[str]], flag: str = "--reward") -> None:
    """A one-line error if a target key is known to none of the models."""
    known = sorted({k for keys in keys_by_model.values() for k in keys})
    for key in targets:
        if key not in known:
            raise ValueError(f"unknown reward key {key!r} in {flag}; the models know: {', '.join(known) or '(none)'}")
