"""Shapes-world generation speed: sampling + captions + rendering (+ image noise), one process.

A benchmark, never a test: prints samples/s for each stage and the total; asserts nothing.

    .venv/bin/python bench/world_generate.py                  # 100k samples at 32 px, default noise
    .venv/bin/python bench/world_generate.py -n 20000 --size 64 --clean
    .venv/bin/python bench/world_generate.py --shards /tmp/x  # also time PNG + tar writing
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from mirokit.world.dataset import WorldDataset, make_item
from mirokit.world.noise import degrade_images
from mirokit.world.render import render_batch
from mirokit.world.sampling import WorldConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--num-samples", type=int, default=100_000, help="samples to generate")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--chunk", type=int, default=1024, help="samples rendered per call")
    parser.add_argument("--clean", action="store_true", help="no noise at all")
    parser.add_argument("--shards", default=None, help="also write shards to this folder and time it")
    args = parser.parse_args()
    cfg = WorldConfig(image_size=args.size)
    cfg = cfg.clean() if args.clean else cfg
    times = {"sample+caption": 0.0, "render": 0.0, "image noise": 0.0}
    checksum = 0
    start = time.perf_counter()
    for lo in range(0, args.num_samples, args.chunk):
        t0 = time.perf_counter()
        items = [make_item(cfg, i) for i in range(lo, min(lo + args.chunk, args.num_samples))]
        t1 = time.perf_counter()
        pixels = render_batch([it.scene for it in items], args.size)
        t2 = time.perf_counter()
        pixels = degrade_images(pixels, [it.noise for it in items])
        t3 = time.perf_counter()
        times["sample+caption"] += t1 - t0
        times["render"] += t2 - t1
        times["image noise"] += t3 - t2
        checksum = (checksum + int(pixels[:, 0, 0].sum())) % 1_000_003
    total = time.perf_counter() - start
    n = args.num_samples
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs visible, "
          f"{n} samples at {args.size}px, noise {'off' if args.clean else 'default'} (checksum {checksum})")
    print("| stage | seconds | samples/s |\n|---|---|---|")
    for stage, seconds in times.items():
        print(f"| {stage} | {seconds:.2f} | {n / seconds:,.0f} |")
    print(f"| **total** | {total:.2f} | {n / total:,.0f} |")
    if args.shards:
        from mirokit.world.shards import write_shards

        t0 = time.perf_counter()
        paths = write_shards(WorldDataset(n, cfg), args.shards)
        seconds = time.perf_counter() - t0
        print(f"| shards (generate + PNG + tar) | {seconds:.2f} | {n / seconds:,.0f} | -> {len(paths)} shards")


if __name__ == "__main__":
    main()
