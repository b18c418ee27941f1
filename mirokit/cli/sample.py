"""`mirokit sample --model DIR --prompt TEXT ... --out DIR`: PNGs + settings.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from mirokit.cli.commands import COMMANDS
from mirokit.cli.sampling_flags import add_model_flags, add_sampling_flags, explicit_settings, model_dtype


@COMMANDS.register("sample")
def add_parser(sub) -> None:
    """Add the `mirokit sample` parser to `sub` (the top-level sub-commands)."""
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
    """Run `mirokit sample` with parsed `args`; returns the exit status."""
    from mirokit.distributed import resolve_device
    from mirokit.pipeline import MiroPipeline
    from mirokit.sample_output import save_samples
    from mirokit.sampling.targets import settings_record

    if args.num_images < 1:
        raise ValueError("--num-images must be >= 1")
    device = str(resolve_device(args.device))
    pipe = MiroPipeline.from_pretrained(args.model, variant=args.variant, device=device,
                                        text_encoder=args.text_encoder, vae=args.vae).to(dtype=model_dtype(args))
    out = pipe(args.prompt, num_images=args.num_images, preset=args.preset, progress=True, **explicit_settings(args))
    record = {"model": str(args.model), **settings_record(out.settings, args.preset), "reward_keys": pipe.reward_keys,
              "num_images": args.num_images, "device": device}
    files = save_samples(out, args.out, record)
    print(f"wrote {len(files)} images to {Path(args.out)}")
    return 0
