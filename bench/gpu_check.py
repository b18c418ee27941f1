"""One GPU check: run this once on a GPU and read one table (issue 35).

    .venv/bin/python bench/gpu_check.py                            # a CUDA machine: the full list, < 8 minutes
    .venv/bin/python bench/gpu_check.py --device cpu --quick       # every row on tiny models, seconds (a test)

Rows, all in one process on one device:
- the training step of the official-configuration RIN (~360M, 4x32x32 latents, 77 text tokens of 2048-d, 7 rewards)
  in bf16 autocast, mirokit's network beside the official one (miro-t2i's CADRINTextCond, same weights:
  bench/official.py), eager and with every RIN block compiled (what `train.compile: true` does): images/s, MFU
  against the device's dense bf16 peak (mirokit.train.mfu) and peak memory; then mirokit's whole step (+ gradient
  clipping + AdamW) and the same step with FSDP2 on one rank (a one-process group; bf16 parameters, fp32 reduction);
- 50-step sampling at batch 16 (Euler, guidance: 2 branches, bf16 weights on CUDA);
- the seven reward scorers and the encode job's batch on the test suite's tiny models of the real classes;
- a smoke of every stage on the device: a 2-step training run (loader pinning, autocast, checkpoint, export), the
  exported pipeline to PIL images, the studio's job queue, GenEval's detector and colour classifier, the recaption
  model's `generate`.

Every row runs even if one fails; a failed row says FAILED in the table, its traceback follows, and the exit status
is 1. `--quick` shrinks every model and count (the CPU run in tests/test_gpu_check.py keeps this script working until
a GPU is at hand); its numbers are not GPU figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for folder in ("bench", "tests", "tests/rewards", "tests/evaluate", "tests/captions", "tests/train"):
    sys.path.insert(0, str(ROOT / folder))

from train_step import median_seconds, sync  # noqa: E402  (bench/train_step.py: the same timing)

QUICK_NETWORK = dict(data_size=8, data_dim=32, num_input_channels=4, num_latents=12, latents_dim=64, label_dim=48,
                     num_processing_layers=1, num_blocks=2, patch_size=2, num_cond_tokens=8, read_write_heads=4,
                     compute_heads=4, num_text_registers=4)
"""--quick: the official network's layout at test size (tests/models/test_official_parity.py)"""
BUDGET_S = 480.0
OFFICIAL_KEYS = ["clip_score", "aesthetic_score", "image_reward_score", "pick_a_score_score", "hpsv2_score",
                 "vqa_score", "sciscore_score"]


def generator_config(quick: bool):
    """The official RIN's GeneratorConfig (7 rewards), or --quick's tiny one of the same layout."""
    from mirokit.models.generator import official_rin_config
    from mirokit.models.official import convert_official_config

    if not quick:
        return official_rin_config(OFFICIAL_KEYS)
    network = dict(QUICK_NETWORK, coherence_keys=OFFICIAL_KEYS, use_cond_rin_block=True,
                   concat_cond_token_to_latents=False, use_self_conditioning=True)
    pre = dict(num_latents=QUICK_NETWORK["num_latents"], latents_dim=QUICK_NETWORK["latents_dim"], sigma_data=0.5,
               do_gradnorm_reweighting=True, logvar_channels=16)
    return convert_official_config({"network": network, "preconditioning": pre})


class Table:
    """The rows, their failures and the one printed table."""

    COLUMNS = ("check", "images/s", "MFU", "peak memory", "seconds", "result")

    def __init__(self):
        self.rows: list[tuple] = []
        self.failures: list[tuple[str, str]] = []

    def run(self, name: str, fn) -> None:
        """Run `fn() -> list of (check, images/s, mfu, peak bytes, seconds or None, note)`; a row without its own
        seconds gets the group's on its first line; a failure becomes a FAILED row."""
        start = time.perf_counter()
        try:
            results = fn()
        except Exception:  # every row runs; the failure is printed in full and fails the run
            self.failures.append((name, traceback.format_exc()))
            self.rows.append((name, None, None, None, time.perf_counter() - start, "FAILED"))
            print(f"FAILED: {name}", file=sys.stderr, flush=True)
            return
        seconds = time.perf_counter() - start
        for i, (check, rate, mfu, memory, own, note) in enumerate(results):
            self.rows.append((check, rate, mfu, memory, own if own is not None else seconds if i == 0 else None, note))
        print(f"done: {name} ({seconds:.1f} s)", file=sys.stderr, flush=True)

    def print(self) -> None:
        def cell(value, kind):
            if value is None:
                return "-"
            if kind == "rate":
                return f"{value:.1f}" if value >= 10 else f"{value:.3g}"
            if kind == "mfu":
                return f"{100 * value:.1f}%"
            if kind == "memory":
                return f"{value / 2 ** 30:.2f} GiB"
            return f"{value:.1f}"

        print("| " + " | ".join(self.COLUMNS) + " |")
        print("|---|---:|---:|---:|---:|---|")
        for check, rate, mfu, memory, seconds, note in self.rows:
            print(f"| {check} | {cell(rate, 'rate')} | {cell(mfu, 'mfu')} | {cell(memory, 'memory')} | "
                  f"{cell(seconds, 's')} | {note} |")


# -- timing -------------------------------------------------------------------------------------------------------
def timed(fn, device: torch.device, repeats: int) -> tuple[float, int | None]:
    """(median seconds per call after one warm-up call (bench/train_step.py's timing), peak memory allocated during
    the calls or None on CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = median_seconds(fn, repeats, device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return seconds, peak


@contextlib.contextmanager
def one_rank_group(device: torch.device):
    """A process group of one rank (nccl on CUDA, gloo on CPU), for FSDP2 without torchrun."""
    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


# -- rows ---------------------------------------------------------------------------------------------------------
def training_rows(args, device: torch.device) -> list[tuple]:
    """mirokit's RIN and the official network (same weights), loss + backward in bf16 autocast, eager and compiled."""
    import official
    from official import build_pair, interleaved

    from mirokit.train.mfu import device_peak_tflops, train_flops_per_image

    name = "quick" if args.quick else "official"
    official.CONFIGS["quick"] = QUICK_NETWORK
    pair = build_pair(name, args.batch, args.text_len, device, bf16=True)
    flops = train_flops_per_image(pair.generator.flops_per_image(args.text_len), 0.9)
    peak = device_peak_tflops(device, dtype=torch.bfloat16)
    rows = []

    def measure(label: str, compiled: str):
        rounds = 1 if args.quick else 5
        t_ours, t_official, ratio = interleaved(pair.ours_step, pair.official_step, rounds, args.repeats,
                                                lambda: sync(device))
        for who, fn, seconds in (("mirokit", pair.ours_step, t_ours), ("official CADRINTextCond", pair.official_step,
                                                                         t_official)):
            _, memory = timed(fn, device, 1)
            rate = args.batch / seconds
            mfu = rate * flops / (peak * 1e12) if peak else None
            note = f"{compiled}; mirokit/official time {ratio:.2f}" if who == "mirokit" else compiled
            rows.append((f"train step, {name} RIN, bf16, {label}: {who}", rate, mfu, memory, None, note))

    measure("eager", f"batch {args.batch}, loss + backward")
    start = time.perf_counter()
    for block in pair.blocks:
        block.compile(backend=args.compile_backend)
    pair.ours_step(), pair.official_step()  # the compilations
    sync(device)
    measure(f"compiled ({args.compile_backend})", f"compile {time.perf_counter() - start:.0f} s")
    return rows


def full_step_rows(args, device: torch.device) -> list[tuple]:
    """mirokit's whole training step (+ clip + AdamW), plain and under FSDP2 on one rank."""
    from train_step import fake_inputs

    from mirokit.flow.loss import FlowLossConfig, draw_flow_noise, flow_matching_loss
    from mirokit.models import MiroGenerator
    from mirokit.train.mfu import device_peak_tflops, train_flops_per_image
    from mirokit.train.optim import OptimConfig, build_optimizer
    from mirokit.train.parallelize import _fsdp

    config = generator_config(args.quick)
    peak = device_peak_tflops(device, dtype=torch.bfloat16)
    flow_cfg = FlowLossConfig(self_cond_prob=0.9)
    rows = []

    def step_fn(model, optimizer):
        x0, _, conditions = fake_inputs(config, args.batch, args.text_len, device)
        gen = torch.Generator(device=device).manual_seed(0)
        params = [p for p in model.parameters() if p.requires_grad]

        def step():
            draw = draw_flow_noise(tuple(x0.shape), flow_cfg, gen)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss, _ = flow_matching_loss(model, x0, conditions, draw, flow_cfg)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    torch.manual_seed(0)
    model = MiroGenerator(config).to(device).train()
    flops = train_flops_per_image(model.flops_per_image(args.text_len), 0.9)
    seconds, memory = timed(step_fn(model, build_optimizer(model, OptimConfig())), device, args.repeats)
    rate = args.batch / seconds
    rows.append(("train step + clip + AdamW, mirokit, bf16 autocast", rate, peak and rate * flops / (peak * 1e12),
                 memory, None, f"batch {args.batch}"))
    del model
    fully_shard, MixedPrecisionPolicy, _ = _fsdp()
    with one_rank_group(device):
        torch.manual_seed(0)
        model = MiroGenerator(config).to(device).train()
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for unit in model.blocks():
            fully_shard(unit, mp_policy=mp)
        fully_shard(model, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                                          cast_forward_inputs=False))
        seconds, memory = timed(step_fn(model, build_optimizer(model, OptimConfig())), device, args.repeats)
    rate = args.batch / seconds
    rows.append(("train step + clip + AdamW, FSDP2 on one rank (bf16 params, fp32 reduce)", rate,
                 peak and rate * flops / (peak * 1e12), memory, None, f"batch {args.batch}"))
    return rows


def sampling_rows(args, device: torch.device) -> list[tuple]:
    """`steps`-step Euler sampling with guidance of `sample_batch` images (bf16 weights on CUDA)."""
    from mirokit.encoders import TokenTextEncoder, TokenTextEncoderConfig
    from mirokit.models import MiroGenerator
    from mirokit.pipeline import MiroPipeline

    config = generator_config(args.quick)
    torch.manual_seed(0)
    text = TokenTextEncoder(TokenTextEncoderConfig(dim=config.text_dim, max_length=args.text_len, num_layers=1,
                                                   num_heads=8 if config.text_dim % 8 == 0 else 4))
    pipe = MiroPipeline(MiroGenerator(config), text).to(device)
    if device.type == "cuda":
        pipe.to(torch.bfloat16)
    prompts = [f"a small red ball number {i}" for i in range(args.sample_batch)]

    def run():
        return pipe(prompts, num_inference_steps=args.sample_steps, solver="euler", guidance_scale=3.0,
                    batch_size=args.sample_batch, output_type="latent").images

    seconds, memory = timed(run, device, 1 if args.quick else 3)
    dtype = "bf16" if device.type == "cuda" else "fp32"
    return [(f"sampling, {args.sample_steps} Euler steps, guidance, batch {args.sample_batch}, {dtype}",
             args.sample_batch / seconds, None, memory, None, f"{2 * args.sample_steps} network calls per image")]


def scorer_rows(args, device: torch.device, root: Path) -> list[tuple]:
    """The seven scorers on the suite's tiny models, 8 images in batches of 4."""
    import numpy as np
    from clip_testkit import CAPTIONS, images
    from scorer_kit import tiny_scorer_options

    from mirokit.rewards import build_scorer

    options = tiny_scorer_options(root)
    ims, caps = images(8), (CAPTIONS * 2)[:8]
    rows = []
    for key, opts in options.items():
        start = time.perf_counter()
        scorer = build_scorer(key, device=str(device), batch_size=4, **opts)
        out = []
        score = lambda out=out, scorer=scorer: out.append(scorer.score(ims, caps))
        seconds, memory = timed(score, device, args.repeats)
        if out[-1].shape != (8,) or not np.isfinite(out[-1]).all():
            raise RuntimeError(f"{key}: scores {out[-1]} (expected 8 numbers)")
        rows.append((f"scorer {key} (tiny)", 8 / seconds, None, memory, time.perf_counter() - start, "ok"))
    return rows


def encode_rows(args, device: torch.device, root: Path) -> list[tuple]:
    """The encode job's batch (VAE moments + T5 states, bfloat16 weights on CUDA) on the tiny VAE and T5."""
    from conftest import build_tiny_t5, build_tiny_vae

    from mirokit.encoders.encode_job import EncodeJobConfig, Encoders

    build_tiny_vae(root / "vae")
    build_tiny_t5(root / "t5")
    encoders = Encoders(EncodeJobConfig(inputs=[], out_dir=str(root / "unused"), rewards=[], vae=str(root / "vae"),
                                        text_encoder=str(root / "t5"), max_length=8, batch_size=16,
                                        device=str(device)))
    pixels = torch.rand(16, 3, 16, 16) * 2 - 1
    captions = ["a red circle", "big blue square"] * 8

    def batch():
        moments = encoders.vae.encode_moments(pixels).cpu()
        states = encoders.texts(captions)
        assert moments.shape == (16, 8, 8, 8) and len(states) == 16 and torch.isfinite(moments).all()

    seconds, memory = timed(batch, device, args.repeats)
    return [("encode batch: VAE moments + T5 states (tiny)", 16 / seconds, None, memory, None,
             f"weights {str(encoders.vae.vae.dtype).replace('torch.', '')}")]


def stage_smoke_rows(args, device: torch.device, root: Path) -> list[tuple]:
    """Every stage once on the device, on tiny models: train (2 steps, checkpoint, export) -> pipeline -> studio,
    the loader's pinned transfer, GenEval's detector and colour classifier, the recaption model's generate."""
    import numpy as np
    from PIL import Image
    from runs import TINY_UNET, tiny_run
    from torch.utils.data._utils.pin_memory import pin_memory

    from mirokit.data.loader import LoaderConfig, StepBatchSampler, batches, build_loader
    from mirokit.data.sampler import EpochShuffle
    from mirokit.data.toy import ToyDataConfig, toy_source
    from mirokit.pipeline import MiroPipeline
    from mirokit.train.loop import train

    rows = []

    def smoke(check: str, fn) -> None:
        start = time.perf_counter()
        note = fn()
        rows.append((f"smoke: {check}", None, None, None, time.perf_counter() - start, f"ok{note or ''}"))

    # data: the loader's batches pinned (on CUDA) and copied without blocking
    def loader():
        dataset = toy_source(ToyDataConfig(num_samples=16), image_size=16, channels=3)
        sampler = StepBatchSampler(EpochShuffle(16, seed=0), global_batch=4, rows=(0, 4), start_step=0, end_step=1)
        built = build_loader(dataset, sampler, list(dataset.info.reward_keys), LoaderConfig(num_workers=0), device)
        assert built.pin_memory == (device.type == "cuda")
        for batch in batches(built):
            if device.type == "cuda":
                batch = pin_memory(batch)
                assert batch.images.is_pinned()
            moved = batch.to(device, non_blocking=True)
            sync(device)
            assert moved.images.device.type == device.type
        return f"; pin_memory={built.pin_memory}"

    smoke("loader batch -> pinned -> non_blocking copy", loader)

    export = {}

    def training():
        out = root / "run"
        precision = "bf16" if device.type == "cuda" else "fp32"  # (auto on CPU would time both first)
        train(tiny_run(out, "model.reward_keys=[brightness,size]", "train.batch_size=8", "train.steps=2",
                       "train.log_every=1", "optim.warmup_steps=1", "train.checkpoint_every=1",
                       f"train.device={device.type}", f"train.precision={precision}", base=TINY_UNET))
        export["model"] = out / "model"
        assert (out / "model" / "model.safetensors").is_file() and (out / "checkpoints").is_dir()
        return f"; {precision}"

    smoke("train 2 steps (loader, AdamW, EMA; bf16 on CUDA) + checkpoint + export", training)

    def sample():
        for dtype in (None, torch.bfloat16):
            pipe = MiroPipeline.from_pretrained(export["model"], device=device, torch_dtype=dtype)
            images = pipe(["a red circle", "two squares"], num_inference_steps=3, rewards={"brightness": 0.8})
            assert len(images) == 2 and images[0].size == (16, 16)

    smoke("exported pipeline -> PIL, fp32 and bf16", sample)

    def studio():
        from mirokit.studio.jobs import FINISHED
        from mirokit.studio.session import Studio

        session = Studio({"m": MiroPipeline.from_pretrained(export["model"], device=device)}, root / "studio")
        try:
            job = session.submit("check", {"model": "m", "prompt": "a red circle", "steps": 3, "solver": "euler",
                                           "seed": 1, "num_images": 2})
            deadline = time.time() + 120
            while job.status not in FINISHED and time.time() < deadline:
                time.sleep(0.05)
            assert job.status == "done" and len(job.results) == 2, (job.status, job.error)
        finally:
            session.queue.close()

    smoke("studio job queue: a generate job", studio)

    def geneval():
        from geneval_testkit import save_clip, tiny_mask2former

        from mirokit.evaluate.geneval_colour import ClipColourClassifier
        from mirokit.evaluate.geneval_detector import Mask2FormerDetector

        tiny_mask2former({15: 10.0, 16: 10.0}).save_pretrained(root / "m2f")
        detector = Mask2FormerDetector(str(root / "m2f"), min_score=0.3, device=str(device))
        image = Image.new("RGB", (48, 40), (250, 0, 0))
        found = detector.detect([image])[0]
        strong = [d for dets in found.values() for d in dets if d.score > 0.3]
        assert len(strong) == 12 and all(d.mask.all() for d in strong)
        colours = ClipColourClassifier(save_clip(root / "gclip"), device=str(device)).classify(image, strong[:2], "cat")
        assert len(colours) == 2

    smoke("GenEval detector + colour classifier", geneval)

    def recaption():
        from vlm_kit import save_tiny_llava

        from mirokit.captions import build_captioner

        captioner = build_captioner("vlm", model=str(save_tiny_llava(root / "llava")), max_new_tokens=6,
                                    device=str(device), dtype="bfloat16" if device.type == "cuda" else "float32")
        image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8))
        captions = captioner.caption([image, image], ["a red thing", None])
        assert len(captions) == 2 and all(isinstance(c, str) for c in captions)

    smoke("recaption model generate (tiny LLaVA)", recaption)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny models and counts: a smoke run of every row")
    parser.add_argument("--batch", type=int, default=None, help="training batch (default 64; --quick 2)")
    parser.add_argument("--text-len", type=int, default=None, help="text tokens (default 77; --quick 6)")
    parser.add_argument("--sample-batch", type=int, default=None, help="sampling batch (default 16; --quick 2)")
    parser.add_argument("--sample-steps", type=int, default=None, help="sampling steps (default 50; --quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 5; --quick 1)")
    parser.add_argument("--compile-backend", default=None, help="default inductor (--quick on CPU: aot_eager)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's; --quick 1)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to this torch")
    device = torch.device(args.device)
    quick = args.quick
    defaults = dict(batch=2 if quick else 64, text_len=6 if quick else 77, sample_batch=2 if quick else 16,
                    sample_steps=2 if quick else 50, repeats=1 if quick else 5,
                    compile_backend="aot_eager" if quick and device.type == "cpu" else "inductor")
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    if args.threads or quick:
        torch.set_num_threads(args.threads or 1)
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (not a GPU figure)"
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in ("scorers", "encode", "stages"):
            (root / folder).mkdir()
        table.run("training step vs the official network", lambda: training_rows(args, device))
        table.run("whole training step and FSDP2", lambda: full_step_rows(args, device))
        table.run("sampling", lambda: sampling_rows(args, device))
        table.run("reward scorers", lambda: scorer_rows(args, device, root / "scorers"))
        table.run("encode batch", lambda: encode_rows(args, device, root / "encode"))
        table.run("stage smoke", lambda: stage_smoke_rows(args, device, root / "stages"))
    total = time.perf_counter() - started
    print(f"\n## GPU check on {name}: torch {torch.__version__}, {'--quick, ' if quick else ''}"
          f"{total:.0f} s in all\n")
    table.print()
    if not quick and total > BUDGET_S:
        print(f"\nover the {BUDGET_S:.0f} s budget: {total:.0f} s")
    for check, trace in table.failures:
        print(f"\n### FAILED: {check}\n\n{trace}", file=sys.stderr)
    if table.failures:
        print(f"\n{len(table.failures)} check(s) FAILED: {', '.join(c for c, _ in table.failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
