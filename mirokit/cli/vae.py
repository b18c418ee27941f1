"""`mirokit vae init --out DIR`: a small randomly initialised AutoencoderKL for CPU runs and tests."""

from __future__ import annotations

from mirokit.cli.commands import COMMANDS, add_group


@COMMANDS.register("vae")
def add_parser(sub) -> None:
    """Add the `mirokit vae` group (init) to `sub` (the top-level sub-commands)."""
    add_group(sub, "vae", metavar="ACTION", help="make a tiny VAE for CPU latent-space runs",
              description="`init` writes a small diffusers AutoencoderKL with random weights in hub layout "
                          "(config.json + diffusion_pytorch_model.safetensors) and the per-channel statistics of its "
                          "latents on the built-in toy images (latent_stats.json, for image_space.normalisation="
                          "stats). A random VAE is not a good image codec: it exercises latent-space training on a "
                          "CPU (configs/cpu_latent.yaml); for real runs use the SDXL VAE (stabilityai/sdxl-vae).",
              epilog="example:\n  mirokit vae init --out runs/tiny_vae && mirokit train --config cpu_latent")


@COMMANDS.register("vae.init")
def add_init_parser(vsub) -> None:
    """Add the `mirokit vae init` parser to `vsub` (the sub-commands of its group)."""
    init = vsub.add_parser("init", help="write a tiny random VAE and its latent statistics",
                           description="Write a small random AutoencoderKL and its latent statistics on toy images.")
    init.add_argument("--out", required=True, help="folder to write")
    init.add_argument("--channels", default="16,32", help="block widths, comma-separated (default 16,32: x2 down)")
    init.add_argument("--latent-channels", type=int, default=4, help="latent channels (default 4, like SDXL)")
    init.add_argument("--image-size", type=int, default=32, help="toy image side for the statistics (default 32)")
    init.add_argument("--samples", type=int, default=512, help="toy images for the statistics (default 512)")
    init.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    init.set_defaults(func=run_init)


def run_init(args) -> int:
    """Run `mirokit vae init` with parsed `args`: write the tiny VAE and its latent statistics; returns the exit
    status."""
    from mirokit.encoders.vae import describe_tiny_vae, init_tiny_vae
    from mirokit.options import parse_ints

    widths = parse_ints(args.channels, "--channels")
    made = init_tiny_vae(args.out, widths=widths, latent_channels=args.latent_channels, image_size=args.image_size,
                         samples=args.samples, seed=args.seed)
    print(describe_tiny_vae(made, args.out))
    return 0
