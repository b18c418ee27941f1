"""Cost of the shipped world autoencoder on CPU: one call on a whole batch in the default layout (what the
demo did before) vs the `world_ae` image space, which runs it in channels-last chunks of CPU_CHUNK images.
Encoding and decoding are the world stage's and every sampled image's largest cost after scoring.

A benchmark, never a test: prints a markdown table of milliseconds per image with the space's speed-up.

    .venv/bin/python bench/world_ae.py [--images 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mirokit.world.ae_space import CPU_CHUNK, WorldAESpace
from mirokit.world.autoencoder import WorldAutoencoder


def ms_per_image(fn, n: int, repeats: int = 5) -> float:
    """Median of `repeats` timings of fn() (after one warm-up call), in ms per image of its n images."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) / n * 1e3)
    return statistics.median(runs)


def main() -> None:
    """Time encode and decode both ways on random inputs and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    whole = WorldAutoencoder.from_pretrained()
    space = WorldAESpace()
    pixels = torch.rand(args.images, 3, 32, 32) * 2 - 1
    latents = whole.encode(pixels).detach()
    print(f"{args.images} images, {args.threads} thread(s), chunks of {CPU_CHUNK}\n")
    print("| | one call, default layout (ms/image) | chunked, channels-last (ms/image) | speed-up |")
    print("|---|---:|---:|---:|")
    with torch.inference_mode():
        # the space's decode also maps to [0, 1] and clamps (a negligible share)
        for name, one, chunked in (("encode", lambda: whole.encode(pixels), lambda: space.encode(pixels)),
                                   ("decode", lambda: whole.decode(latents), lambda: space.decode(latents))):
            a, b = ms_per_image(one, args.images), ms_per_image(chunked, args.images)
            print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
