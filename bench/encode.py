"""`mirokit encode` end to end against the bare VAE + T5 forward passes on pre-decoded tensors, in one run.

A benchmark, never a test. Random-weight models of moderate size stand in for the SDXL VAE and FLAN-T5
(no downloads); the same images and captions are (a) written as scored tar shards and encoded with the
real job (tar reading, PNG decoding and resizing in worker processes, VAE, T5, safetensors and tar
writing), and (b) fed as ready tensors straight to the same VAE and T5 calls. The ratio (a) / (b) in
images per second is the pipeline's efficiency (1.0: the job costs nothing beyond the models).

    .venv/bin/python bench/encode.py                 # 256 images of 128x128, batch 32
    .venv/bin/python bench/encode.py --quick         # seconds-long smoke run
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_models(root: Path, image_size: int) -> tuple[Path, Path]:
    """An AutoencoderKL (x4 down, widths 64-128-256: lighter per pixel than the SDXL VAE's 128-256-512-512)
    and a T5 encoder (d_model 256, 4 layers) in hub layout."""
    from diffusers import AutoencoderKL
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(64, 128, 256), latent_channels=4,
                  norm_num_groups=32, layers_per_block=1, sample_size=image_size).save_pretrained(root / "vae")
    words = ["<pad>", "</s>", "<unk>", *(f"w{i}" for i in range(500))]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    T5EncoderModel(T5Config(vocab_size=len(words), d_model=256, d_kv=32, d_ff=1024, num_layers=4,
                            num_heads=8)).save_pretrained(root / "t5")
    tokenizer.save_pretrained(root / "t5")
    return root / "vae", root / "t5"


def make_shards(root: Path, n: int, image_size: int, per_shard: int) -> tuple[list[np.ndarray], list[str]]:
    """n random JPEG-free PNG images with captions and scores, in tar shards of `per_shard`."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images, captions = [], []
    (root / "scored").mkdir()
    for s in range(0, n, per_shard):
        with tarfile.open(root / "scored" / f"{s // per_shard:05d}.tar", "w") as tar:
            for i in range(s, min(s + per_shard, n)):
                # smooth-ish images (PNG of pure noise would be unusually slow to decode)
                small = rng.integers(0, 255, (image_size // 8, image_size // 8, 3), dtype=np.uint8)
                image = np.asarray(Image.fromarray(small).resize((image_size, image_size), Image.BILINEAR))
                caption = " ".join(f"w{j}" for j in rng.integers(0, 500, 12))
                images.append(image)
                captions.append(caption)
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, format="PNG")
                for ext, data in (("png", buf.getvalue()), ("txt", caption.encode()),
                                  ("json", json.dumps({"clip_score": float(rng.random())}).encode())):
                    info = tarfile.TarInfo(f"{i:06d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return images, captions


def bare_forward(vae_dir: Path, t5_dir: Path, images: list[np.ndarray], captions: list[str], batch: int,
                 max_length: int) -> float:
    """images/s of the VAE and T5 calls alone on pre-decoded tensors (what the job runs per batch)."""
    from mirokit.encoders.text_hf import HFTextEncoder
    from mirokit.encoders.vae import VAESpace, VAESpaceConfig

    vae = VAESpace(VAESpaceConfig(name_or_path=str(vae_dir), sample=False, batch_size=batch))
    text = HFTextEncoder(str(t5_dir), max_length=max_length)
    pixels = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1).contiguous()
    vae.encode_moments(pixels[:batch]), text(captions[:batch])  # warm-up (and model loading)
    start = time.perf_counter()
    for b in range(0, len(images), batch):
        vae.encode_moments(pixels[b:b + batch])
        states, mask = text(captions[b:b + batch])
        [s[m] for s, m in zip(states, mask)]
    return len(images) / (time.perf_counter() - start)


def end_to_end(root: Path, vae_dir: Path, t5_dir: Path, n: int, image_size: int, batch: int, max_length: int,
               workers: int, run: int) -> float:
    """images/s of `mirokit encode` over the shards (models loaded before the clock starts)."""
    from mirokit.encoders.encode_job import EncodeJobConfig, run_encode_job

    cfg = EncodeJobConfig(inputs=[str(root / "scored")], out_dir=str(root / f"enc{run}"), rewards=["clip_score"],
                          vae=str(vae_dir), text_encoder=str(t5_dir), max_length=max_length, image_size=image_size,
                          batch_size=batch, num_workers=workers, progress=False)
    manifest = run_encode_job(cfg)
    assert manifest["samples"] == n, manifest
    return n / manifest["seconds_this_run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--per-shard", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0,
                        help="decoding workers of the job (default 0: on a CPU they would compete with the models)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images, args.image_size, args.batch, args.per_shard, args.rounds = 32, 64, 16, 16, 1
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step import machine_lines

    print("## Machine\n")
    for line in machine_lines(torch.device("cpu")):
        print(f"- {line}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vae_dir, t5_dir = make_models(root, args.image_size)
        images, captions = make_shards(root, args.images, args.image_size, args.per_shard)
        rows = []
        for r in range(args.rounds):
            bare = bare_forward(vae_dir, t5_dir, images, captions, args.batch, 32)
            job = end_to_end(root, vae_dir, t5_dir, args.images, args.image_size, args.batch, 32, args.workers, r)
            rows.append((bare, job))
    bare = statistics.median(b for b, _ in rows)
    job = statistics.median(j for _, j in rows)
    ratio = statistics.median(j / b for b, j in rows)
    print(f"\n## mirokit encode vs the bare VAE + T5 forward ({args.images} images of "
          f"{args.image_size}x{args.image_size}, batch {args.batch}, {args.workers} decoding worker(s), "
          f"{args.threads} threads, median of {args.rounds})\n")
    print("| measurement | img/s |")
    print("|---|---:|")
    print(f"| VAE + T5 forward on pre-decoded tensors | {bare:.1f} |")
    print(f"| `mirokit encode` end to end (read, decode, encode, write) | {job:.1f} |")
    print(f"| ratio end to end ÷ bare | {ratio:.3f} |")


if __name__ == "__main__":
    main()
