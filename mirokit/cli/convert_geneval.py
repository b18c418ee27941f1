"""`mirokit convert-geneval-detector SRC.pth OUT/`: GenEval's mmdet Mask2Former -> transformers folder."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert-geneval-detector", help="convert GenEval's mmdet Mask2Former checkpoint to a transformers folder",
        description="Maps mmdet's mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco checkpoint (mmdet 2.x or 3.x key "
                    "layout; read with torch.load(weights_only=True)) onto transformers' "
                    "Mask2FormerForUniversalSegmentation, loads it strictly and writes OUT/config.json, "
                    "OUT/model.safetensors, OUT/mirokit_geneval.json (what was converted), OUT/conversion.html and "
                    "OUT/conversion.png. Use OUT with `mirokit eval geneval --detector OUT`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mirokit convert-geneval-detector mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.pth "
               "models/geneval_detector")
    p.add_argument("src", help="the mmdet .pth checkpoint (GenEval's download_models.sh fetches it)")
    p.add_argument("out", help="output folder (created)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mirokit.evaluate.geneval_convert import convert_checkpoint
    from mirokit.evaluate.geneval_report import write_conversion_report

    report = convert_checkpoint(args.src, args.out)
    page = write_conversion_report(args.out, report)
    cfg = report["config"]
    print(f"converted {report['source_tensors']} tensors ({report['layout']} layout): Swin depths "
          f"{cfg['swin_depths']}, {cfg['num_queries']} queries, {cfg['num_labels']} classes")
    print(f"wrote {args.out}/config.json, model.safetensors, mirokit_geneval.json and {page}")
    return 0
