"""`mirokit eval geneval FOLDER --out results.json`: GenEval's official rules with Mask2Former + CLIP colours."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.dtypes import DTYPES

EPILOG = """examples:
  mirokit convert geneval-detector mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.pth models/geneval_detector
  mirokit eval geneval samples/ --out samples_geneval/results.json --detector models/geneval_detector
  torchrun --nproc_per_node 8 -m mirokit.cli.main eval geneval samples/ --out r/results.json --detector ...
  mirokit eval geneval samples/ --out r/results.json --detector ... --shard-index 0 --num-shards 4   # one job of 4
  mirokit eval geneval samples/ --out r/results.json --detector ...   # afterwards: merges the shards
"""


@COMMANDS.register("eval.geneval")
def add_parser(esub) -> None:
    """Add the `mirokit eval geneval` parser to `esub` (the sub-commands of its group)."""
    from mirokit.evaluate.geneval_colour import DEFAULT_CLIP
    from mirokit.evaluate.geneval_detector import FACEBOOK_HUB_ID

    p = esub.add_parser(
        "geneval", help="GenEval: Mask2Former detections + CLIP colours under GenEval's rules",
        description="Scores a GenEval-layout folder (FOLDER/00000/metadata.jsonl + FOLDER/00000/samples/0000.png) "
                    "with GenEval's official rules: detections above 0.3 (0.9 for counting), at most 16 per class, "
                    "no NMS, positions with threshold 0.1, colours by zero-shot CLIP ViT-L/14 on the masked crop; "
                    "include clauses ANDed, exclude clauses ORed; overall = mean of the per-tag accuracies. "
                    "Writes the summary (--out), per-image records (<stem>.jsonl), a page (<stem>.html) with a "
                    "bar plot and the failures drawn with their boxes. Resumes; splits over --num-shards jobs "
                    "and torchrun ranks.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("folder", help="GenEval-layout folder of generated images")
    p.add_argument("--out", required=True, help="summary JSON path; records, page and plots go beside it")
    p.add_argument("--detector", default=FACEBOOK_HUB_ID,
                   help="folder made by `mirokit convert geneval-detector` (reproduces published GenEval numbers) "
                        f"or a Mask2Former hub id / folder (default {FACEBOOK_HUB_ID}, with a warning)")
    p.add_argument("--clip", default=DEFAULT_CLIP,
                   help=f"CLIP hub id or local folder for colours (default {DEFAULT_CLIP})")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                   help="auto = this rank's GPU when CUDA is available, else cpu")
    p.add_argument("--dtype", default="fp32", choices=tuple(DTYPES), help="detector precision (GenEval: fp32)")
    p.add_argument("--batch-size", type=int, default=4, help="images per detector forward (default 4)")
    p.add_argument("--shard-index", type=int, default=0, help="this job's shard (prompt folder i goes to i %% N)")
    p.add_argument("--num-shards", type=int, default=1,
                   help="number of separate jobs sharing the folder; a later run without it merges them")
    p.add_argument("--restart", action="store_true", help="delete earlier records of --out instead of resuming")
    p.add_argument("--detector-threshold", type=float, default=0.3, help="keep detections scoring above this (0.3)")
    p.add_argument("--counting-threshold", type=float, default=0.9, help="score threshold for the counting tag (0.9)")
    p.add_argument("--position-threshold", type=float, default=0.1,
                   help="GenEval's position threshold (fraction of the summed box sizes, 0.1)")
    p.add_argument("--max-objects", type=int, default=16, help="detections kept per class (16)")
    p.add_argument("--background", default="#999", help="colour behind the object's mask in CLIP crops, or 'original'")
    p.add_argument("--max-failures", type=int, default=60, help="failures drawn on the HTML page (60)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit eval geneval` with parsed `args`; returns the exit status."""
    from dataclasses import asdict

    from mirokit import distributed
    from mirokit.evaluate.geneval_colour import ClipColourClassifier
    from mirokit.evaluate.geneval_detector import Mask2FormerDetector
    from mirokit.evaluate.geneval_folder import format_summary
    from mirokit.evaluate.geneval_rules import checked_rules
    from mirokit.evaluate.geneval_run import run_geneval

    rules = checked_rules(detector_threshold=args.detector_threshold, counting_threshold=args.counting_threshold,
                          position_threshold=args.position_threshold, max_objects=args.max_objects)
    if args.batch_size < 1 or args.max_failures < 0:
        raise ValueError("--max-failures must be >= 0 and --batch-size >= 1")
    if args.num_shards < 1 or not 0 <= args.shard_index < args.num_shards:
        raise ValueError(f"--shard-index must be in [0, --num-shards={args.num_shards})")
    info = distributed.init_distributed(args.device)
    device = str(info.device)
    # Constructing checks the paths; the weights load on the first image that needs them.
    detector = Mask2FormerDetector(args.detector, device=device, dtype=args.dtype,
                                   min_score=rules.min_score)
    colour = ClipColourClassifier(args.clip, device=device, background=args.background)
    settings = {"rules": asdict(rules), "detector": detector.describe(), "clip": colour.describe()}
    try:
        summary = run_geneval(args.folder, args.out, detector=detector, colour=colour,
                              rules=rules, settings=settings, batch_size=args.batch_size,
                              shard_index=args.shard_index, num_shards=args.num_shards, restart=args.restart,
                              max_failures=args.max_failures)
    finally:
        distributed.cleanup()
    if summary is None:
        if info.is_main:
            print(f"shard {args.shard_index}/{args.num_shards} done; run again without --num-shards to merge")
        return 0
    print(format_summary(summary))
    print(f"wrote {args.out}, its .jsonl and {summary['html']}")
    return 0
