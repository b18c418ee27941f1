"""`mirokit sample --model DIR --prompt TEXT ... --out DIR`: PNGs + settings.json."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, float | None]:
    """["k=0.5", "j=nan"] -> {"k": 0.5, "j": None}; malformed items raise a one-line ValueError."""
    out: dict[str, float | None] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {item!r} must look like KEY=VALUE")
        if raw.lower() in ("nan", "none", "missing"):
            out[key] = None
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{flag} {item!r}: {raw!r} is not a number (use nan for 'missing')") from None
        if not math.isfinite(value):
            raise ValueError(f"{flag} {item!r}: value must be finite")
        out[key] = value
    return out


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sample", help="generate images from a trained model",
        description="Generate images with multi-reward guidance: D = D_cond*(1+w) - D_uncond*w, where the "
                    "conditional branch gets the prompt and --reward targets (default 1.0 for every reward) and "
                    "the unconditional branch the empty prompt and --negative-reward targets (default 0.0).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mirokit sample --model runs/default/model --prompt 'a red circle' "
               "--reward brightness=0.2 --num-images 4 --out samples/",
    )
    p.add_argument("--model", required=True,
                   help="model folder (a run's model/, a checkpoints/step_N/, a released MIRO checkpoint) or hub id")
    p.add_argument("--variant", default=None, help="subfolder of --model (e.g. miro-no-clip of nicolas-dufour/miro-ablations)")
    p.add_argument("--text-encoder", default=None, help="hub id or local folder replacing the model's T5 encoder")
    p.add_argument("--vae", default=None, help="hub id or local folder replacing the model's VAE")
    p.add_argument("--prompt", action="append", required=True,
                   help="text prompt; repeat the flag for several prompts")
    p.add_argument("--reward", action="append", metavar="KEY=VALUE",
                   help="positive reward target in [0,1] (repeatable; unspecified rewards get 1.0; nan = missing)")
    p.add_argument("--negative-reward", action="append", metavar="KEY=VALUE",
                   help="target of the negative (unconditional) branch (repeatable; default 0.0 for every reward)")
    p.add_argument("--steps", type=int, default=None,
                   help="ODE steps (default: the model's released default, else 50)")
    p.add_argument("--guidance", type=float, default=None,
                   help="joint text+reward guidance scale w (default: the model's released default, else 7)")
    p.add_argument("--text-guidance", type=float, default=None,
                   help="separate text guidance scale (use with --reward-guidance; replaces --guidance)")
    p.add_argument("--reward-guidance", type=float, default=None,
                   help="separate reward guidance scale (use with --text-guidance)")
    p.add_argument("--solver", choices=["euler", "heun"], default="euler", help="ODE solver (default euler)")
    p.add_argument("--shift", type=float, default=1.0, help="time shift of the signal-level grid (default 1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--num-images", type=int, default=1, help="images per prompt (default 1)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward batch (default 16)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--out", required=True, help="output folder for PNGs and settings.json")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling import GuidanceConfig, SampleConfig, generate

    rewards = parse_key_values(args.reward, "--reward")
    negative = parse_key_values(args.negative_reward, "--negative-reward")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    pipe = MiroPipeline.from_pretrained(args.model, variant=args.variant, device=device,
                                        text_encoder=args.text_encoder, vae=args.vae)
    defaults = pipe.sampler_defaults
    args.steps = args.steps if args.steps is not None else defaults.get("steps", 50)
    args.guidance = args.guidance if args.guidance is not None else defaults.get("guidance", 7.0)
    if args.num_images < 1 or args.steps < 1:
        raise ValueError("--num-images and --steps must be >= 1")
    guidance = GuidanceConfig(scale=args.guidance, text_scale=args.text_guidance, reward_scale=args.reward_guidance)
    cfg = SampleConfig(steps=args.steps, solver=args.solver, shift=args.shift, guidance=guidance, seed=args.seed,
                       batch_size=args.batch_size)
    prompts = [p for p in args.prompt for _ in range(args.num_images)]
    x = generate(pipe, prompts, rewards=rewards, negative_rewards=negative, cfg=cfg, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, image in enumerate(pipe.image_space.to_pil(x)):
        name = f"{i // args.num_images:03d}_{i % args.num_images:03d}.png"
        image.save(out / name)
        files.append({"file": name, "prompt": prompts[i]})
    settings = {"model": str(args.model), "rewards": rewards, "negative_rewards": negative,
                "reward_keys": pipe.reward_keys, "steps": args.steps, "solver": args.solver, "shift": args.shift,
                "guidance": args.guidance, "text_guidance": args.text_guidance,
                "reward_guidance": args.reward_guidance, "seed": args.seed, "num_images": args.num_images,
                "device": device, "images": files}
    (out / "settings.json").write_text(json.dumps(settings, indent=2))
    print(f"wrote {len(files)} images to {out}")
    return 0
