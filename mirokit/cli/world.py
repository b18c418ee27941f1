"""`mirokit world render|generate`: ground-truth GenEval folders and noisy training shards of the shapes world."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "world", help="the shapes world: render ground truth, generate noisy training shards, train its autoencoder",
        description="The shapes world: a procedural text-to-image dataset (coloured shapes, GenEval-like "
                    "captions, web-like caption and image noise) whose rewards are computable from pixels.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit world render --out geneval_gt/\n"
               "  mirokit world generate --num-samples 100000 --out shards/ --noise blur=0.2",
    )
    wsub = p.add_subparsers(dest="world_command", metavar="WORLD_COMMAND", required=True,
                            help="render | generate | autoencoder")

    r = wsub.add_parser(
        "render", help="render ground-truth images for GenEval-schema prompts",
        description="Render scenes satisfying each prompt into GenEval's folder layout: "
                    "OUT/00000/metadata.jsonl (the prompt's metadata) and OUT/00000/samples/0000.png ...",
    )
    r.add_argument("--prompts", default=None,
                   help="GenEval-schema JSONL prompt file (default: the shipped ShapesEval prompts)")
    r.add_argument("--out", required=True, help="output folder (one sub-folder per prompt)")
    r.add_argument("--images-per-prompt", type=int, default=4, help="images per prompt (default 4, as GenEval)")
    r.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    r.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    r.add_argument("--mismatch", action="store_true",
                   help="render each prompt's images from a different prompt (a fixed derangement): a "
                        "deliberately wrong baseline that the evaluator must score low")
    r.set_defaults(func=run_render)

    g = wsub.add_parser(
        "generate", help="write a noisy shapes-world dataset as webdataset-style tar shards",
        description="Generate samples (PNG image, caption, JSON metadata with the caption's GenEval-schema "
                    "claim, the applied noise and the scene) into DIR/shard-NNNNNN.tar; prints how many "
                    "samples got each noise kind and writes DIR/world.json.",
    )
    g.add_argument("--num-samples", type=int, required=True, help="number of samples")
    g.add_argument("--out", required=True, help="output folder for the shards")
    g.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    g.add_argument("--seed", type=int, default=None, help="world seed (default: the config's, 0)")
    g.add_argument("--size", type=int, default=None, help="image side in pixels (default: the config's, 32)")
    g.add_argument("--clean", action="store_true", help="set every noise rate to 0 (applied before --noise)")
    g.add_argument("--noise", action="append", metavar="KIND=RATE",
                   help="rate of one noise kind (repeatable); kinds: wrong_colour, count_off, swap_relation, "
                        "missing_object, cut_border, blur, pixel_noise, jpeg, low_contrast")
    g.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="overrides",
                   help="override any WorldConfig field (repeatable), e.g. texture_prob=0.5 or "
                        "object_count_probs=[0.5,0.5]")
    g.set_defaults(func=run_generate)

    a = wsub.add_parser(
        "autoencoder", help="train the world autoencoder (the latent space of the demo's generators)",
        description="Train a WorldAutoencoder on images of the demo's world (mirokit.world.sampling."
                    "demo_world_config) and write OUT/config.json + model.safetensors. The one shipped with mirokit "
                    "(mirokit/world/world_ae/, `name_or_path: builtin`) was made by this command with its defaults; "
                    "prints the reconstruction's agreement with the originals under the world's detector and rewards.",
    )
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--samples", type=int, default=8000, help="world images to train on (default 8000)")
    a.add_argument("--steps", type=int, default=3000, help="optimizer steps (default 3000)")
    a.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    a.add_argument("--widths", default="48,96", help="channels per stride-2 level, comma-separated (default 48,96: x4 down)")
    a.add_argument("--latent-channels", type=int, default=4, help="latent channels (default 4)")
    a.add_argument("--seed", type=int, default=0, help="world, initialisation and batch seed (default 0)")
    a.add_argument("--half", action="store_true", help="store the weights in float16 (half the file size)")
    a.set_defaults(func=run_autoencoder)


def run_render(args) -> int:
    import numpy as np
    from PIL import Image

    from mirokit.world.prompts import derangement, load_shapes_eval
    from mirokit.world.render import render_batch
    from mirokit.world.sampling import WorldConfig, scene_for_metadata

    if args.images_per_prompt < 1:
        raise ValueError("--images-per-prompt must be >= 1")
    prompts = load_shapes_eval(args.prompts)
    cfg = WorldConfig(image_size=args.size, seed=args.seed)
    sources = derangement(prompts, args.seed) if args.mismatch else list(range(len(prompts)))
    out = Path(args.out)
    for i, item in enumerate(prompts):
        folder = out / f"{i:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        with open(folder / "metadata.jsonl", "w") as fp:  # one JSON object, as GenEval's generator writes it
            json.dump(item, fp)
        rng = np.random.default_rng([args.seed, i])
        scenes = [scene_for_metadata(prompts[sources[i]], rng, cfg) for _ in range(args.images_per_prompt)]
        for j, image in enumerate(render_batch(scenes, args.size)):
            Image.fromarray(image).save(folder / "samples" / f"{j:04d}.png")
    kind = "mismatched " if args.mismatch else ""
    print(f"wrote {len(prompts)} prompts x {args.images_per_prompt} {kind}images to {out}")
    return 0


def world_config_from_args(args):
    """WorldConfig from --set overrides, --clean, --noise rates, --seed and --size (in that order)."""
    from mirokit.cli.sample import parse_key_values
    from mirokit.config import apply_overrides, from_dict, to_dict
    from mirokit.world.noise import NOISE_KINDS
    from mirokit.world.sampling import WorldConfig

    data = apply_overrides({}, args.overrides or [])
    cfg = from_dict(WorldConfig, data)
    if args.clean:
        cfg = cfg.clean()
    data = to_dict(cfg)
    for kind, rate in parse_key_values(args.noise, "--noise").items():
        if kind not in NOISE_KINDS:
            raise ValueError(f"--noise {kind!r}: unknown noise kind; known: {', '.join(NOISE_KINDS)}")
        if rate is None:
            raise ValueError(f"--noise {kind!r}: the rate must be a number")
        data[f"{kind}_rate"] = rate
    if args.seed is not None:
        data["seed"] = args.seed
    if args.size is not None:
        data["image_size"] = args.size
    return from_dict(WorldConfig, data)


def run_generate(args) -> int:
    from mirokit.config import to_dict
    from mirokit.world.dataset import WorldDataset
    from mirokit.world.noise import NOISE_KINDS
    from mirokit.world.shards import write_shards

    if args.num_samples < 1:
        raise ValueError("--num-samples must be >= 1")
    cfg = world_config_from_args(args)
    dataset = WorldDataset(args.num_samples, cfg)
    counts: Counter = Counter()

    def counted():
        for sample in dataset.iter_samples():
            noise = sample[3]["noise"]
            counts.update(list(noise))
            counts["clean"] += not noise
            yield sample

    out = Path(args.out)
    paths = write_shards(counted(), out, shard_size=args.shard_size)
    summary = {"num_samples": args.num_samples, "shards": [p.name for p in paths], "config": to_dict(cfg),
               "noise_counts": {k: counts[k] for k in (*NOISE_KINDS, "clean")}}
    (out / "world.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.num_samples} samples in {len(paths)} shard(s) to {out}")
    for kind in (*NOISE_KINDS, "clean"):
        print(f"  {kind:<15} {counts[kind]:>8}  ({counts[kind] / args.num_samples:.1%})")
    return 0


def run_autoencoder(args) -> int:
    import torch

    from mirokit.world.autoencoder import AETrainConfig, WorldAEConfig, train_autoencoder
    from mirokit.world.dataset import WorldDataset
    from mirokit.world.sampling import demo_world_config
    from mirokit.world.source import WORLD_REWARDS, score_images

    try:
        widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        raise ValueError(f"--widths {args.widths!r} must be comma-separated integers") from None
    if args.samples < 1 or args.steps < 1 or args.batch_size < 1:
        raise ValueError("--samples, --steps and --batch-size must be >= 1")
    cfg = WorldAEConfig(widths=widths, latent_channels=args.latent_channels, image_size=32)
    images = WorldDataset(args.samples, demo_world_config(args.seed)).images(list(range(args.samples)))
    ae, losses = train_autoencoder(images, cfg, AETrainConfig(steps=args.steps, batch_size=args.batch_size,
                                                               seed=args.seed))
    if args.half:
        ae.half()
    out = ae.save_pretrained(args.out)
    clean = WorldDataset(500, demo_world_config(args.seed + 1).clean())
    x = clean.images(list(range(500)))
    with torch.no_grad():
        rec = ae.float().decode(ae.float().encode(x)).clamp(-1, 1)
    to_u8 = lambda t: ((t + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
    for name, batch in (("originals", to_u8(x)), ("reconstructions", to_u8(rec))):
        raw = score_images(batch, clean.captions, WORLD_REWARDS)
        print(f"{name}: " + ", ".join(f"{k} {float(v.mean()):.3f}" for k, v in raw.items()))
    print(f"final loss {sum(losses[-50:]) / min(50, len(losses)):.4f}; wrote {out}")
    return 0
