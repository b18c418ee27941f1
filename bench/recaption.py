"""End-to-end `mirokit recaption` throughput vs the captioner's bare generate loop, in one run.

Builds a small randomly initialised LLaVA of the real transformers classes (tests/captions/vlm_kit.py; no
download), writes webdataset shards of 256x256 PNGs, then measures
  (a) captioner.caption() on images decoded beforehand, batch by batch (model + processor only), and
  (b) run_recaption_job() on the shards (tar reading + decoding in DataLoader workers + captioning + parquet),
and prints (b)/(a): 1.0 means reading, decoding and writing are hidden behind generation. A benchmark: it
reports, it asserts nothing.

    .venv/bin/python bench/recaption.py [--images 128] [--batch 16] [--workers 1] [--threads 2] [--tokens 24]
                                        [--hidden 32] [--layers 2]
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=24, help="new tokens per caption")
    p.add_argument("--hidden", type=int, default=32, help="the random LLaVA's language-model width (real: 576-4096)")
    p.add_argument("--layers", type=int, default=2, help="its depth (real: 30-32)")
    args = p.parse_args()

    import torch
    from PIL import Image

    from mirokit.captions import build_captioner
    from mirokit.captions.job import RecaptionJobConfig, run_recaption_job

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "tests" / "captions"))
    from vlm_kit import save_tiny_llava

    work = Path(tempfile.mkdtemp(prefix="bench_recaption_"))
    model = save_tiny_llava(work / "llava", hidden=args.hidden, layers=args.layers)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(args.images)]
    (work / "shards").mkdir()
    per = max(1, args.images // 4)
    for s in range(0, args.images, per):
        with tarfile.open(work / "shards" / f"{s // per:05d}.tar", "w") as tar:
            for i in range(s, min(s + per, args.images)):
                buf = io.BytesIO()
                images[i].save(buf, format="PNG")
                for ext, data in (("png", buf.getvalue()), ("txt", b"a photo of a red circle")):
                    info = tarfile.TarInfo(f"{i:05d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    options = {"model": str(model), "max_new_tokens": args.tokens}
    captioner = build_captioner("vlm", **options)
    captioner.caption(images[: args.batch], [None] * args.batch)  # warm-up
    start = time.perf_counter()
    for i in range(0, args.images, args.batch):
        captioner.caption(images[i:i + args.batch], ["a photo of a red circle"] * len(images[i:i + args.batch]))
    bare = args.images / (time.perf_counter() - start)
    cfg = RecaptionJobConfig(inputs=[str(work / "shards")], out_dir=str(work / "out"), batch_size=args.batch,
                             num_workers=args.workers, progress=False, captioner="vlm", captioner_options=options)
    start = time.perf_counter()
    run_recaption_job(cfg)
    job = args.images / (time.perf_counter() - start)
    print(f"{args.images} images of 256x256, batch {args.batch}, {args.tokens} new tokens, {args.workers} worker(s), "
          f"{args.threads} threads, language model {args.hidden} wide x {args.layers} layers")
    print("| measure | images/s |\n|---|---:|")
    print(f"| captioner.caption() on decoded images | {bare:.1f} |")
    print(f"| mirokit recaption end to end | {job:.1f} |")
    print(f"| **ratio** | **{job / bare:.3f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
