"""`mirokit sample --model DIR --prompt TEXT ... --out DIR`: PNGs + settings.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mirokit.cli.sampling_flags import (add_model_flags, add_sampling_flags, parse_key_values, resolve_device,
                                        resolve_sampling)

__all__ = ["add_parser", "parse_key_values", "run"]


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
    add_model_flags(p)
    p.add_argument("--prompt", action="append", required=True,
                   help="text prompt; repeat the flag for several prompts")
    p.add_argument("--num-images", type=int, default=1, help="images per prompt (default 1)")
    add_sampling_flags(p)
    p.add_argument("--out", required=True, help="output folder for PNGs and settings.json")
    p.set_defaults(func=run)


def run(args) -> int:
    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling import generate

    if args.num_images < 1:
        raise ValueError("--num-images must be >= 1")
    device = resolve_device(args.device)
    pipe = MiroPipeline.from_pretrained(args.model, variant=args.variant, device=device,
                                        text_encoder=args.text_encoder, vae=args.vae)
    sampling = resolve_sampling(args, pipe.sampler_defaults)
    prompts = [p for p in args.prompt for _ in range(args.num_images)]
    x = generate(pipe, prompts, rewards=sampling.rewards, negative_rewards=sampling.negative_rewards,
                 cfg=sampling.cfg, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, image in enumerate(pipe.image_space.to_pil(x)):
        name = f"{i // args.num_images:03d}_{i % args.num_images:03d}.png"
        image.save(out / name)
        files.append({"file": name, "prompt": prompts[i]})
    settings = {"model": str(args.model), **sampling.settings(), "reward_keys": pipe.reward_keys,
                "num_images": args.num_images, "device": device, "images": files}
    (out / "settings.json").write_text(json.dumps(settings, indent=2))
    print(f"wrote {len(files)} images to {out}")
    return 0
