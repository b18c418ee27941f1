"""End-to-end `mirokit score` throughput vs the same scorer on pre-decoded images, in one run.

Builds a randomly initialised CLIP of ViT-B/32-like shape (no download), writes webdataset shards of
256x256 JPEGs, then measures
  (a) scorer.score() on images that were decoded beforehand (model + preprocessing only), and
  (b) run_score_job() on the shards (tar reading + JPEG decoding in DataLoader workers + scoring +
      parquet writing),
and prints (b)/(a): 1.0 means reading and decoding are completely hidden behind the model.

    .venv/bin/python bench/score.py [--images 512] [--workers 1] [--threads 2] [--batch 64]
"""

from __future__ import annotations

import argparse
import io
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np


def build_clip(folder: Path, width: int, layers: int) -> None:
    """A random CLIPModel with a tiny character-level tokenizer, saved as a hub-layout folder."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    letters = sorted(set("abcdefghijklmnopqrstuvwxyz "))
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({c + "</w>": len(letters) + i for i, c in enumerate(letters)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    n = len(tok)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=n, hidden_size=width // 2, intermediate_size=2 * width,
                         num_hidden_layers=layers // 2, num_attention_heads=8, max_position_embeddings=77,
                         bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1),
        vision_config=dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                           num_attention_heads=12, image_size=224, patch_size=32),
        projection_dim=256)
    torch.manual_seed(0)
    CLIPModel(cfg).eval().save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    processor.save_pretrained(str(folder))


def write_shards(folder: Path, n: int, per_shard: int = 128) -> list[str]:
    """n random-texture 256x256 JPEGs + captions in tar shards; returns the shard paths."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for s in range(0, n, per_shard):
        path = folder / f"shard-{s // per_shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(s, min(s + per_shard, n)):
                small = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                buf = io.BytesIO()
                Image.fromarray(small).resize((256, 256), Image.BICUBIC).save(buf, format="JPEG", quality=90)
                for name, data in ((f"{i:08d}.jpg", buf.getvalue()), (f"{i:08d}.txt", b"a red circle on grey")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(str(path))
    return paths


def main() -> int:
    import torch

    from mirokit.rewards import build_scorer
    from mirokit.rewards.inputs import iter_tar
    from mirokit.rewards.job import ScoreJobConfig, run_score_job
    from mirokit.rewards.unit_job import decode

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--workers", type=int, default=1, help="decoding workers of the end-to-end run")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the scorer")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=768, help="vision width of the random CLIP (768 = ViT-B)")
    p.add_argument("--layers", type=int, default=12, help="vision layers of the random CLIP (12 = ViT-B)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_score_"))
    try:
        build_clip(tmp / "clip", args.width, args.layers)
        shards = write_shards(tmp, args.images)
        scorer = build_scorer("clip_score", model=str(tmp / "clip"), batch_size=args.batch).load()
        decoded = [decode(s) for path in shards for s in iter_tar(path)]
        images, captions = [d[2] for d in decoded], [d[1] for d in decoded]
        scorer.score(images[: args.batch], captions[: args.batch])  # warm-up
        start = time.perf_counter()
        reference = scorer.score(images, captions)
        ref_rate = len(images) / (time.perf_counter() - start)
        cfg = ScoreJobConfig(inputs=shards, out_dir=str(tmp / "out"), rewards=["clip_score"],
                             reward_options={"clip_score": {"model": str(tmp / "clip"), "batch_size": args.batch}},
                             batch_size=args.batch, num_workers=args.workers, progress=False)
        start = time.perf_counter()
        manifest = run_score_job(cfg)
        e2e_rate = manifest["counts"]["scored"] / (time.perf_counter() - start)
        import pyarrow.parquet as pq

        got = np.concatenate([pq.read_table(tmp / "out" / f"{Path(s).stem}.parquet").column("clip_score").to_numpy()
                              for s in shards])
        assert np.allclose(got, reference, atol=1e-5), "end-to-end scores differ from the direct ones"
        params = sum(t.numel() for t in scorer.model.parameters()) / 1e6
        print(f"machine: {torch.get_num_threads()} torch threads, {args.workers} decode worker(s), "
              f"torch {torch.__version__}")
        print(f"scorer: random CLIP, vision width {args.width} x {args.layers} layers, {params:.1f}M parameters, "
              f"224 px, batch {args.batch}; {args.images} JPEGs 256x256 in {len(shards)} shards")
        print(f"{'pre-decoded scorer.score()':32s} {ref_rate:8.1f} img/s")
        print(f"{'mirokit score end-to-end':32s} {e2e_rate:8.1f} img/s")
        print(f"{'ratio end-to-end / pre-decoded':32s} {e2e_rate / ref_rate:8.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
