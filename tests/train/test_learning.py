"""The model actually learns: overfitting 8 captioned images, and reward control on the toy world."""

import json

import numpy as np
import torch
from PIL import Image
from runs import TINY_UNET, tiny_run

from mirokit.data.toy import ToyShapesDataset, measure_brightness, toy_caption_list
from mirokit.pipeline import MiroPipeline
from mirokit.sampling import SamplingSettings, generate
from mirokit.train.loop import train
from mirokit.train.metrics import read_metrics


def _write_eight_images(folder):
    """8 toy images with 8 distinct captions, as PNG files + captions.jsonl (no scores)."""
    toy = ToyShapesDataset(400, image_size=16, seed=3)
    seen, lines = set(), []
    for i in range(len(toy)):
        image, caption = toy[i][:2]
        if caption in seen:
            continue
        seen.add(caption)
        arr = ((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{len(lines)}.png")
        lines.append({"image": f"{len(lines)}.png", "caption": caption, "scores": {}})
        if len(lines) == 8:
            break
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    return lines


def test_overfit_eight_images(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = _write_eight_images(data)
    run = tmp_path / "run"
    out = train(tiny_run(run, "data.kind=jsonl", f"data.path={data / 'captions.jsonl'}", "model.reward_keys=[]",
                         "train.steps=300", "train.batch_size=8", "train.log_every=10", "optim.lr=2e-3",
                         "optim.warmup_steps=20", "optim.total_steps=300", "train.ema_decay=0.95",
                         "train.checkpoint_every=0", base=TINY_UNET))
    rows = read_metrics(run / "metrics.jsonl")
    first, last = rows[0]["mse"], np.mean([r["mse"] for r in rows[-3:]])
    print(f"mse {first:.3f} -> {last:.3f}")
    assert last < first / 4

    pipe = MiroPipeline.from_pretrained(out)
    captions = [x["caption"] for x in lines]
    targets = torch.stack([torch.from_numpy(np.asarray(Image.open(data / x["image"]), dtype=np.float32))
                           for x in lines]).permute(0, 3, 1, 2) / 127.5 - 1
    samples = generate(pipe, captions, SamplingSettings(steps=20, guidance=1.0))
    err = ((samples[:, None] - targets[None]) ** 2).flatten(2).mean(2)  # err[i, j]: sample i vs image j
    own = err.diag().mean().item()
    other = err[~torch.eye(8, dtype=torch.bool)].mean().item()
    print(f"error to own image {own:.4f}, to other images {other:.4f}")
    assert own < other / 3
    assert (err.argmin(dim=1) == torch.arange(8)).float().mean() >= 0.75


def test_reward_control_brightness(tmp_path):
    out = train(tiny_run(tmp_path, "model.reward_keys=[brightness]", "data.num_samples=2048", "train.steps=250",
                         "train.batch_size=32", "train.log_every=50", "optim.lr=2e-3", "optim.warmup_steps=20",
                         "optim.total_steps=250", "train.ema_decay=0.95", "train.checkpoint_every=0",
                         base=TINY_UNET))
    pipe = MiroPipeline.from_pretrained(out)
    prompts = toy_caption_list()[::2]
    measured = {}
    for target in (0.0, 1.0):  # through the Python call users make: PIL images back
        out = pipe(prompts, rewards={"brightness": target}, negative_rewards={"brightness": 1 - target}, steps=12,
                   guidance=1.0)
        pixels = torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) for im in out.images]))
        measured[target] = measure_brightness(pixels.permute(0, 3, 1, 2) / 127.5 - 1)
    print({t: round(m.mean().item(), 3) for t, m in measured.items()})
    assert measured[1.0].mean() - measured[0.0].mean() > 0.4
    assert (measured[1.0] > measured[0.0]).float().mean() > 0.8
