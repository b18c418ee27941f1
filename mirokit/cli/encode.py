"""`mirokit encode`: scored shards -> encoded shards (VAE latent moments, T5 states, raw scores)."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.dtypes import DTYPES


@COMMANDS.register("encode")
def add_parser(sub) -> None:
    """Add the `mirokit encode` parser to `sub` (the top-level sub-commands)."""
    p = sub.add_parser(
        "encode", help="precompute VAE latents and T5 text states for scored shards",
        description="Reads tar shards with images, captions and raw scores (as `mirokit score --enrich` writes "
                    "them), runs the VAE encoder (latent mean and std) and the T5 encoder (states of the valid "
                    "tokens of every caption) and writes OUT/<shard>.tar in the format of the `shards` data source, "
                    "plus OUT/encoding.json, OUT/uncond_text.safetensors (T5 states of the empty prompt) and "
                    "OUT/latent_stats.json (per-channel latent statistics). Restarting skips finished shards; "
                    "--shard-index/--num-shards and torchrun ranks split the shards. Unreadable images and "
                    "missing captions are left out and counted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit encode 'scores/enriched/{00000..00099}.tar' --reward clip_score "
               "--reward aesthetic_score --caption synthetic --out encoded/\n"
               "  torchrun --nproc_per_node 8 -m mirokit.cli.main encode scores/enriched/ --reward clip_score "
               "--vae /models/sdxl-vae --text-encoder /models/flan-t5-xl --out encoded/",
    )
    p.add_argument("inputs", nargs="+", help="scored tar shards: paths, brace patterns or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--reward", action="append", default=[], metavar="KEY", help="score field to keep (repeatable)")
    p.add_argument("--caption", action="append", default=[], metavar="NAME",
                   help="extra caption to encode: {key}.NAME.txt with scores NAME_<reward> (repeatable)")
    p.add_argument("--vae", default="stabilityai/sdxl-vae",
                   help="VAE hub id or folder; a pipeline's for --vae-kind diffusers_vae "
                        "(default stabilityai/sdxl-vae)")
    p.add_argument("--text-encoder", default="google/flan-t5-xl",
                   help="T5 hub id or folder; a pipeline's for --text-encoder-kind sana_text / sd3_text "
                        "(default google/flan-t5-xl)")
    p.add_argument("--text-encoder-kind", default="hf_t5",
                   help="hf_t5 | sana_text (Sana's Gemma) | sd3_text (SD3's CLIP-L + CLIP-G + T5): --text-encoder is "
                        "then the pipeline's hub id or folder (default hf_t5)")
    p.add_argument("--vae-kind", default="vae",
                   help="vae (SDXL's) | diffusers_vae (a pipeline's own: SD3's VAE, Sana's DC-AE): --vae is then the "
                        "pipeline's hub id or folder (default vae)")
    p.add_argument("--max-length", type=int, default=128,
                   help="text tokens per caption before trimming (sd3_text: T5's; default 128)")
    p.add_argument("--image-size", type=int, default=256, help="resize + centre-crop images to this (default 256)")
    p.add_argument("--dtype", choices=list(DTYPES), default="fp16",
                   help="storage dtype of latents and text states (default fp16)")
    p.add_argument("--batch-size", type=int, default=32, help="images per VAE / T5 call (default 32)")
    p.add_argument("--num-workers", type=int, default=None,
                   help="decoding worker processes (default: 2 on CUDA; 0 on CPU, where they compete with the models)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--shard-index", type=int, default=0, help="which part of the shards this job takes (default 0)")
    p.add_argument("--num-shards", type=int, default=1, help="into how many parts the shards are split (default 1)")
    p.add_argument("--no-stats", action="store_true", help="do not write latent_stats.json")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit encode` with parsed `args` (this rank's or job's share of the shards); returns the exit status."""
    from mirokit.distributed import cleanup, init_distributed, job_shard
    from mirokit.encoders.encode_job import EncodeJobConfig, encode_shards

    dist = init_distributed(args.device)
    device = str(dist.device)
    if args.batch_size < 1 or args.image_size < 8 or args.max_length < 1:
        raise ValueError("--batch-size, --max-length must be >= 1 and --image-size >= 8")
    shard_index, num_shards = job_shard(args.shard_index, args.num_shards, dist)
    cfg = EncodeJobConfig(
        inputs=args.inputs, out_dir=args.out, rewards=args.reward, vae=args.vae, text_encoder=args.text_encoder,
        text_encoder_kind=args.text_encoder_kind, vae_kind=args.vae_kind, max_length=args.max_length,
        captions=args.caption, image_size=args.image_size, dtype=args.dtype,
        batch_size=args.batch_size, device=device,
        num_workers=args.num_workers if args.num_workers is not None else (2 if device.startswith("cuda") else 0),
        shard_index=shard_index, num_shards=num_shards, stats=not args.no_stats, progress=dist.is_main)
    try:
        summary = encode_shards(cfg, is_main=dist.is_main)
    finally:
        cleanup()
    if summary is not None:
        print(summary)
    return 0
