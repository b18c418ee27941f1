"""`mirokit demo`: train a small reward-conditioned model on the built-in toy world and show control.

Until the shapes-world demo lands this trains one model on the toy dataset (one coloured shape on
a grey background; rewards: background brightness and object size), then samples every prompt
at several reward targets and writes images, a loss curve and metrics.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

BRIGHTNESS_TARGETS = (0.0, 0.5, 1.0)
SIZE_TARGETS = (0.0, 0.5, 1.0)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo", help="train a tiny model on the built-in toy world and show reward control (CPU, ~1-2 min)",
        description="End-to-end demo on CPU with nothing downloaded: train a small reward-conditioned generator "
                    "on the procedural toy dataset, sample each caption at several reward targets, and write "
                    "OUT/grid_brightness.png, OUT/grid_size.png, OUT/loss.png, OUT/samples/*.png and "
                    "OUT/metrics.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="demo_out", help="output folder (its run/ subfolder is replaced)")
    p.add_argument("--steps", type=int, default=300, help="training steps of 32 images")
    p.add_argument("--sample-steps", type=int, default=20, help="ODE steps when sampling")
    p.add_argument("--guidance", type=float, default=2.0, help="joint guidance scale w")
    p.add_argument("--config", default="demo_unet", help="run config (file or built-in name)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides")
    p.set_defaults(func=run)


def _grid(images, rows: int, path: Path, row_labels: list[str], col_labels: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(images) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 1, 1.4 * rows + 0.6), squeeze=False)
    for i, image in enumerate(images):
        ax = axes[i // cols][i % cols]
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if i % cols == 0:
            ax.set_ylabel(row_labels[i // cols], fontsize=8)
        if i < cols:
            ax.set_title(col_labels[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _loss_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([r["step"] for r in rows], [r["mse"] for r in rows], label="velocity MSE")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args) -> int:
    import torch

    from mirokit.cli.train import resolve_config
    from mirokit.data.toy import measure_brightness, toy_caption_list
    from mirokit.pipeline import MiroPipeline
    from mirokit.sampling import GuidanceConfig, SampleConfig, generate
    from mirokit.train.config import load_run_config
    from mirokit.train.loop import train
    from mirokit.train.metrics import read_metrics

    start = time.perf_counter()
    out = Path(args.out)
    run_dir = out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = [f"out_dir={run_dir}", f"train.steps={args.steps}", f"optim.total_steps={args.steps}",
                 *args.overrides]
    cfg = load_run_config(resolve_config(args.config), overrides)
    print(f"[1/3] training {cfg.model.backbone} for {cfg.train.steps} steps of {cfg.train.batch_size} images")
    model_dir = train(cfg)
    train_seconds = time.perf_counter() - start

    print("[2/3] sampling every caption at several reward targets")
    pipe = MiroPipeline.from_pretrained(model_dir)
    prompts = toy_caption_list()[::3]
    sample_cfg = SampleConfig(steps=args.sample_steps, guidance=GuidanceConfig(scale=args.guidance), seed=0)
    samples_dir = out / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    measured: dict[str, float] = {}
    sweeps = {"brightness": BRIGHTNESS_TARGETS, "size": SIZE_TARGETS}
    for key, targets in sweeps.items():
        if key not in pipe.reward_keys:
            continue
        images = []
        for target in targets:
            # the swept reward gets the same target in both branches, so guidance does not push it
            x = generate(pipe, prompts, rewards={key: target}, negative_rewards={key: target}, cfg=sample_cfg)
            if key == "brightness":
                measured[f"{target:.2f}"] = float(measure_brightness(x).mean())
            pils = pipe.image_space.to_pil(x)
            for prompt, image in zip(prompts, pils):
                image.save(samples_dir / f"{key}_{target:.2f}_{prompt.replace(' ', '_')}.png")
            images.extend(pils)
        _grid(images, len(targets), out / f"grid_{key}.png", [f"{key}={t:g}" for t in targets], prompts,
              f"{key} target swept (others 1.0, guided away from 0.0), guidance {args.guidance:g}")

    print("[3/3] writing metrics")
    rows = read_metrics(run_dir / "metrics.jsonl")
    _loss_plot(rows, out / "loss.png")
    metrics = {
        "seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "train_steps": cfg.train.steps,
        "backbone": cfg.model.backbone,
        "parameters": sum(p.numel() for p in pipe.generator.parameters()),
        "first_mse": rows[0]["mse"],
        "final_mse": rows[-1]["mse"],
        "train_images_per_s": sum(r["images_per_s"] for r in rows) / len(rows),
        "measured_brightness_by_target": measured,
        "model": str(model_dir),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"done in {metrics['seconds']:.0f} s: velocity MSE {metrics['first_mse']:.3f} -> "
          f"{metrics['final_mse']:.3f}; brightness target -> measured: "
          + ", ".join(f"{k} -> {v:.2f}" for k, v in measured.items()))
    print(f"see {out / 'grid_brightness.png'}, {out / 'grid_size.png'}, {out / 'loss.png'}, {out / 'metrics.json'}")
    return 0
