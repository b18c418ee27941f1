"""`mirokit eval diversity`: Vendi score, pairwise cosine distance and attribute entropy per prompt, models (and
image folders) side by side."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.cli.eval_common import add_eval_flags, build_runs, load_prompt_set


@COMMANDS.register("eval.diversity")
def add_parser(esub) -> None:
    """Add the `mirokit eval diversity` parser to `esub` (the sub-commands of its group)."""
    p = esub.add_parser(
        "diversity", help="diversity of the images of one prompt (Vendi score, cosine distance, attribute entropy)",
        description="Draw --images-per-prompt images per prompt with each model (same noise for every model), or "
                    "read a GenEval-layout folder (--images), turn them into features with registered extractors "
                    "(--features: clip, or the shapes world's world_ae and world_scene) and report per prompt the "
                    "Vendi score (exp of the entropy of the eigenvalues of the cosine kernel / N: 1 = identical "
                    "images, N = unrelated ones), the mean pairwise cosine distance and, for extractors that parse "
                    "attributes (world_scene), the entropy in bits of each attribute the prompt leaves free; means "
                    "with 95% t-intervals over prompts and each arm's paired difference to the first. --best-of "
                    "KEY=K adds each model after post-hoc best-of-K selection by a reward. Resumable: per-prompt "
                    "rows go to OUT/diversity.jsonl as they are computed. Writes OUT/summary.json, "
                    "OUT/diversity.png and OUT/report.html.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit eval diversity --model baseline=demo_out/runs/baseline/model "
               "--model miro=demo_out/runs/miro/model \\\n      --prompts mirokit/world/shapes_eval.jsonl "
               "--max-prompts 64 --features world_scene --features world_ae --out diversity/\n"
               "  mirokit eval diversity --images miro=shapes_images/ --features world_scene --out diversity_folder/\n"
               "  mirokit eval diversity --model miro=runs/miro/model --features clip "
               "--feature-option clip.model=/models/clip-vit-large-patch14 --out parti_diversity/",
    )
    add_eval_flags(p, score=False, images_per_prompt=8, model_required=False)  # --images: folders, no model
    p.add_argument("--images", action="append", metavar="NAME=FOLDER",
                   help="a GenEval-layout folder of generated images to evaluate as one more arm (repeatable)")
    p.add_argument("--features", action="append", metavar="KIND",
                   help="a registered feature extractor (repeatable; default clip): clip (transformers CLIP image "
                        "embeddings), world_ae, world_scene (the shapes world)")
    p.add_argument("--feature-option", action="append", default=[], metavar="KIND.NAME=VALUE",
                   help="extractor option, e.g. clip.model=/models/clip-vit-large-patch14 or clip.device=cuda")
    p.add_argument("--best-of", action="append", default=[], metavar="KEY=K",
                   help="also evaluate each model after best-of-K selection by reward KEY (image j = the best of "
                        "images j*K .. j*K+K-1; repeatable)")
    p.add_argument("--option", action="append", default=[], metavar="KEY.NAME=VALUE",
                   help="option of a --best-of reward's scorer, e.g. aesthetic_score.model=/path (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run `mirokit eval diversity` with parsed `args`; returns the exit status."""
    from mirokit.config import parse_named
    from mirokit.evaluate.diversity import build_arms, evaluate_diversity, format_diversity, write_diversity_report
    from mirokit.evaluate.runs import build_extractors, header
    from mirokit.evaluate.samples import build_scorers
    from mirokit.options import parse_counts, parse_options

    if args.images_per_prompt < 2:
        raise ValueError("--images-per-prompt must be >= 2")
    best_of = parse_counts(parse_named(args.best_of, "--best-of"), "--best-of")
    folders = parse_named(args.images, "--images")
    if args.model is None and not folders:
        raise ValueError("give --model NAME=DIR and/or --images NAME=FOLDER")
    records, indices = load_prompt_set(args) if args.model else ([], [])
    runs = build_runs(args) if args.model else []
    extractors, specs = build_extractors(args.features, parse_options(args.feature_option))
    scorers = build_scorers(list(best_of), parse_options(args.option))
    arms = build_arms(runs, folders, best_of)
    summary = evaluate_diversity(arms, records, indices, extractors, images_per_prompt=args.images_per_prompt,
                                 out_dir=args.out, scorers=scorers, extractor_specs=specs)
    summary = {**header(indices, prompts=args.prompts, images_per_prompt=args.images_per_prompt), **summary}
    paths = write_diversity_report(summary, args.out)
    print(format_diversity(summary))
    print(f"wrote {paths['summary']}, {paths['html']} and {paths['plot']}")
    return 0
