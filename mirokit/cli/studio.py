"""`mirokit studio MODEL [MODEL ...] [--host 127.0.0.1] [--port 7860]`: reward control in the browser."""

from __future__ import annotations

import argparse
import ipaddress

from mirokit.cli.commands import COMMANDS
from mirokit.cli.sampling_flags import add_dtype_flag


@COMMANDS.register("studio")
def add_parser(sub) -> None:
    """Add the `mirokit studio` parser to `sub` (the top-level sub-commands)."""
    p = sub.add_parser(
        "studio", help="interactive reward control in the browser (needs mirokit[studio])",
        description="Serve a page that samples the model with any reward targets: one positive and one negative "
                    "target per reward key on the model's 1/63 grid (or missing), presets, every sampler setting; "
                    "results with their seed, settings and measured reward scores; sweep strips, two-reward grids "
                    "with their Pareto front, ask vs select (best-of-N), draft then final, model A/B on the same "
                    "noise; a queue with progress, previews and cancel; a history on disk (OUT/history). Binds to "
                    "127.0.0.1 unless --host says otherwise.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit studio demo_out/runs/miro/model\n"
               "  mirokit studio miro=demo_out/runs/miro/model baseline=demo_out/runs/baseline/model --port 8000\n"
               "  mirokit studio nicolas-dufour/miro --text-encoder /models/flan-t5-xl --vae /models/sdxl-vae "
               "--device cuda\n"
               "  mirokit studio /ckpt/miro-ablations --variant miro-no-clip --variant miro-only-aesthetic")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="model folder or hub id, optionally NAME=PATH; several for A/B comparisons")
    p.add_argument("--variant", action="append", default=None,
                   help="subfolder of MODEL (e.g. miro-no-clip of nicolas-dufour/miro-ablations); repeat it to load "
                        "several variants of one MODEL, each picked by its name on the page")
    p.add_argument("--text-encoder", default=None, help="hub id or local folder replacing the models' T5 encoder")
    p.add_argument("--vae", default=None, help="hub id or local folder replacing the models' VAE")
    add_dtype_flag(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--out", default="studio_out", help="folder of the history (default studio_out)")
    p.add_argument("--examples", default=None, help="a .txt file of example prompts, one per line")
    p.add_argument("--option", action="append", default=[], metavar="KEY.NAME=VALUE",
                   help="option of the scorer measuring reward KEY, e.g. clip_score.model=/path (repeatable)")
    p.add_argument("--max-images", type=int, default=16, help="images one request may produce (default 16)")
    p.add_argument("--max-steps", type=int, default=100, help="ODE steps per image (default 100)")
    p.add_argument("--max-points", type=int, default=9, help="points of a sweep strip or grid axis (default 9)")
    p.add_argument("--max-queued", type=int, default=4, help="unfinished jobs per client (default 4)")
    p.set_defaults(func=run)


def build_studio(args):
    """The Studio of the parsed arguments, models loaded (mirokit.studio.build.build_studio)."""
    from mirokit.cli.sampling_flags import model_dtype
    from mirokit.config import parse_named
    from mirokit.options import parse_options
    from mirokit.studio.build import build_studio as build

    return build(parse_named(args.models, "MODEL"), args.out, variants=args.variant, device=args.device,
                 text_encoder=args.text_encoder, vae=args.vae, torch_dtype=model_dtype(args), dtype=args.dtype,
                 scorer_options=parse_options(args.option), examples=args.examples, max_images=args.max_images,
                 max_steps=args.max_steps, max_points=args.max_points, max_queued=args.max_queued)


def run(args) -> int:
    """Run `mirokit studio` with parsed `args` (serves until interrupted); returns the exit status."""
    try:
        import starlette  # noqa: F401 - only checks that the studio's extra is installed
        import uvicorn  # noqa: F401 - only checks that the studio's extra is installed
    except ImportError:
        raise RuntimeError('the studio needs its extra: pip install "mirokit[studio]" (starlette, uvicorn)') from None
    from mirokit.studio.server import serve

    studio = build_studio(args)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"warning: serving on {args.host}: anyone who can reach this address can use the studio")
    print(f"mirokit studio: {', '.join(studio.models)} on http://{args.host}:{args.port}/ (history in "
          f"{args.out}/history; Ctrl+C stops)", flush=True)
    serve(studio, host=args.host, port=args.port)
    return 0
