"""`mirokit vae init --out DIR`: a small randomly initialised AutoencoderKL for CPU runs and tests."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "vae", help="make a tiny VAE for CPU latent-space runs",
        description="`init` writes a small diffusers AutoencoderKL with random weights in hub layout (config.json + "
                    "diffusion_pytorch_model.safetensors) and the per-channel statistics of its latents on the "
                    "built-in toy images (latent_stats.json, for image_space.normalisation=stats). A random VAE is "
                    "not a good image codec: it exercises latent-space training on a CPU (configs/cpu_latent.yaml); "
                    "for real runs use the SDXL VAE (stabilityai/sdxl-vae).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mirokit vae init --out runs/tiny_vae && mirokit train --config cpu_latent",
    )
    vsub = p.add_subparsers(dest="action", metavar="ACTION", required=True, help="init")
    init = vsub.add_parser("init", help="write a tiny random VAE and its latent statistics")
    init.add_argument("--out", required=True, help="folder to write")
    init.add_argument("--channels", default="16,32", help="block widths, comma-separated (default 16,32: x2 down)")
    init.add_argument("--latent-channels", type=int, default=4, help="latent channels (default 4, like SDXL)")
    init.add_argument("--image-size", type=int, default=32, help="toy image side for the statistics (default 32)")
    init.add_argument("--samples", type=int, default=512, help="toy images for the statistics (default 512)")
    init.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    init.set_defaults(func=run_init)


def run_init(args) -> int:
    import torch
    from diffusers import AutoencoderKL

    from mirokit.data.toy import ToyShapesDataset
    from mirokit.encoders.vae import LatentStats, VAESpace, VAESpaceConfig

    try:
        widths = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise ValueError(f"--channels {args.channels!r} must be comma-separated integers") from None
    if not widths or min(widths) < 4 or any(w % 4 for w in widths):
        raise ValueError("--channels: every width must be a multiple of 4 (GroupNorm with 4 groups)")
    torch.manual_seed(args.seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(widths),
                        up_block_types=("UpDecoderBlock2D",) * len(widths), block_out_channels=widths,
                        latent_channels=args.latent_channels, norm_num_groups=4, layers_per_block=1,
                        sample_size=args.image_size)
    vae.save_pretrained(args.out)
    ones = [1.0] * args.latent_channels
    space = VAESpace(VAESpaceConfig(name_or_path=args.out, normalisation="explicit", scale=ones,
                                    bias=[0.0] * args.latent_channels, sample=False))
    images = ToyShapesDataset(args.samples, image_size=args.image_size, seed=args.seed).images(range(args.samples))
    stats = LatentStats()
    stats.update(space.encode_moments(images))
    path = stats.save(f"{args.out}/latent_stats.json")
    mean, std = stats.result()
    print(f"wrote a {sum(p.numel() for p in vae.parameters()):,}-parameter VAE (x{2 ** (len(widths) - 1)} down) to "
          f"{args.out}; latent mean {[round(m, 3) for m in mean]}, std {[round(s, 3) for s in std]} in {path}")
    return 0
