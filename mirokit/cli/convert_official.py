"""`mirokit convert-official SRC OUT`: a released MIRO checkpoint -> a mirokit model folder."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert-official", help="convert a released MIRO checkpoint into a mirokit model folder",
        description="Reads an official MIRO checkpoint (a folder with config.json, model.safetensors and "
                    "uncond_embedding.npy, or a hub repo id such as nicolas-dufour/miro) and writes a mirokit model "
                    "folder that loads with MiroPipeline.from_pretrained and samples identically: renamed weights, "
                    "the RIN config, a frozen FLAN-T5 text encoder spec, the SDXL-VAE latent space with the "
                    "checkpoint's normalisation, the stored empty-prompt embedding and the released sampler defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit convert-official nicolas-dufour/miro models/miro\n"
               "  mirokit convert-official /ckpt/miro-ablations models/miro-no-clip --variant miro-no-clip \\\n"
               "      --text-encoder /models/flan-t5-xl --vae /models/sdxl-vae",
    )
    p.add_argument("source", help="official checkpoint folder or hub repo id")
    p.add_argument("out", help="mirokit model folder to write")
    p.add_argument("--variant", default=None, help="subfolder of SOURCE (the ablations repo's variants)")
    p.add_argument("--text-encoder", default=None, help="hub id or local folder of FLAN-T5 to record instead of the default")
    p.add_argument("--vae", default=None, help="hub id or local folder of the VAE to record instead of the default")
    p.set_defaults(func=run)


def run(args) -> int:
    from mirokit.pipeline import MiroPipeline

    pipe = MiroPipeline.from_pretrained(args.source, variant=args.variant, text_encoder=args.text_encoder, vae=args.vae)
    pipe.save_pretrained(args.out)
    print(f"wrote {args.out}: {len(pipe.reward_keys)} reward keys ({', '.join(pipe.reward_keys)})")
    return 0
