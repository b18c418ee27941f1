"""`mirokit convert KIND SRC OUT`: one-time conversions of published checkpoints into folders mirokit loads
offline (a released MIRO model, GenEval's detector, the reward models whose weights ship in other formats).
`mirokit convert-official` and `mirokit convert-geneval-detector` are the former names of two of them."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS, add_group
from mirokit.dtypes import DTYPES


@COMMANDS.register("convert")
def add_parser(sub) -> None:
    """Add the `mirokit convert` group (one sub-command per converter) to `sub` (the top-level sub-commands)."""
    add_group(sub, "convert", metavar="KIND",
              help="convert a published checkpoint (MIRO, GenEval's detector, reward models) for mirokit",
              description="One-time conversions of published checkpoints into folders that mirokit loads offline, "
                          "with every key mapped strictly (a missing, unexpected or mis-shaped tensor is a one-line "
                          "error).",
              epilog="examples:\n  mirokit convert official nicolas-dufour/miro models/miro\n"
                     "  mirokit convert image-reward ImageReward.pt weights/image-reward --tokenizer bert-base-uncased")


def _help(name: str, text: str, new: str) -> str:
    """The one-line help of a converter; a former top-level name says which command it is now."""
    return text if name == new.split()[-1] else f"former name of `mirokit {new}` (still works)"


def _official(sub, name: str) -> None:
    p = sub.add_parser(
        name, help=_help(name, "a released MIRO checkpoint -> a mirokit model folder", "convert official"),
        description="Reads an official MIRO checkpoint (a folder with config.json, model.safetensors and "
                    "uncond_embedding.npy, or a hub repo id such as nicolas-dufour/miro) and writes a mirokit model "
                    "folder that loads with MiroPipeline.from_pretrained and samples identically: renamed weights, "
                    "the RIN config, a frozen FLAN-T5 text encoder spec, the SDXL-VAE latent space with the "
                    "checkpoint's normalisation, the stored empty-prompt embedding and the released sampler defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit convert official nicolas-dufour/miro models/miro\n"
               "  mirokit convert official /ckpt/miro-ablations models/miro-no-clip --variant miro-no-clip \\\n"
               "      --text-encoder /models/flan-t5-xl --vae /models/sdxl-vae",
    )
    p.add_argument("source", help="official checkpoint folder or hub repo id")
    p.add_argument("out", help="mirokit model folder to write")
    p.add_argument("--variant", default=None, help="subfolder of SOURCE (the ablations repo's variants)")
    p.add_argument("--text-encoder", default=None,
                   help="hub id or local folder of FLAN-T5 to record instead of the default")
    p.add_argument("--vae", default=None, help="hub id or local folder of the VAE to record instead of the default")
    p.set_defaults(func=run_official)


def run_official(args) -> int:
    """Run `mirokit convert official` (or its alias `convert-official`) with parsed `args`: write the mirokit model
    folder; returns the exit status."""
    from mirokit.pipeline import MiroPipeline

    pipe = MiroPipeline.from_pretrained(args.source, variant=args.variant, text_encoder=args.text_encoder, vae=args.vae)
    pipe.save_pretrained(args.out)
    print(f"wrote {args.out}: {len(pipe.reward_keys)} reward keys ({', '.join(pipe.reward_keys)})")
    return 0


def _geneval(sub, name: str) -> None:
    p = sub.add_parser(
        name, help=_help(name, "GenEval's mmdet Mask2Former checkpoint -> a transformers folder",
                         "convert geneval-detector"),
        description="Maps mmdet's mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco checkpoint (mmdet 2.x or 3.x key "
                    "layout; read with torch.load(weights_only=True)) onto transformers' "
                    "Mask2FormerForUniversalSegmentation, loads it strictly and writes OUT/config.json, "
                    "OUT/model.safetensors, OUT/mirokit_geneval.json (what was converted), OUT/conversion.html and "
                    "OUT/conversion.png. Use OUT with `mirokit eval geneval --detector OUT`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mirokit convert geneval-detector mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.pth "
               "models/geneval_detector")
    p.add_argument("src", help="the mmdet .pth checkpoint (GenEval's download_models.sh fetches it)")
    p.add_argument("out", help="output folder (created)")
    p.set_defaults(func=run_convert_geneval_detector)


def run_convert_geneval_detector(args) -> int:
    """Run `mirokit convert geneval-detector` (or its alias `convert-geneval-detector`) with parsed `args`: write
    the transformers folder and its report; returns the exit status."""
    from mirokit.evaluate.geneval_convert import convert_checkpoint
    from mirokit.evaluate.geneval_report import write_conversion_report

    report = convert_checkpoint(args.src, args.out)
    page = write_conversion_report(args.out, report)
    cfg = report["config"]
    print(f"converted {report['source_tensors']} tensors ({report['layout']} layout): Swin depths "
          f"{cfg['swin_depths']}, {cfg['num_queries']} queries, {cfg['num_labels']} classes")
    print(f"wrote {args.out}/config.json, model.safetensors, mirokit_geneval.json and {page}")
    return 0


COMMANDS.register("convert.official")(lambda sub: _official(sub, "official"))
COMMANDS.register("convert-official")(lambda sub: _official(sub, "convert-official"))
COMMANDS.register("convert.geneval-detector")(lambda sub: _geneval(sub, "geneval-detector"))
COMMANDS.register("convert-geneval-detector")(lambda sub: _geneval(sub, "convert-geneval-detector"))


def converter(name: str, *, help: str, description: str, source: str, out: str, convert, flags=None) -> None:
    """Register `mirokit convert NAME SRC OUT [options]`: `convert(args)` writes OUT and returns what it wrote;
    `flags(parser)` adds the converter's own options."""
    def add(csub) -> None:
        p = csub.add_parser(name, help=help, description=description)
        p.add_argument("src", help=source)
        p.add_argument("out", help=out)
        if flags is not None:
            flags(p)
        p.set_defaults(func=lambda args: print(f"wrote {convert(args)}") or 0)

    COMMANDS.register(f"convert.{name}")(add)


def _image_reward(args):
    from mirokit.rewards.image_reward_model import convert_image_reward_checkpoint

    return convert_image_reward_checkpoint(args.src, args.out, args.med_config, args.tokenizer)


def _image_reward_flags(p) -> None:
    p.add_argument("--med-config", default=None, help="their med_config.json (default: beside the .pt)")
    p.add_argument("--tokenizer", default=None, help="bert-base-uncased folder or hub id (saved into OUT)")


def _vqa(args):
    from mirokit.dtypes import dtype_named
    from mirokit.rewards.vqa_convert import convert_clip_t5_checkpoint

    dtype = dtype_named(args.dtype, "--dtype") if args.dtype else None
    return convert_clip_t5_checkpoint(args.src, args.out, args.tokenizer, args.vision_tower, dtype=dtype)


def _vqa_flags(p) -> None:
    p.add_argument("--tokenizer", default=None, help="google/flan-t5-xxl folder or hub id")
    p.add_argument("--vision-tower", default=None,
                   help="openai/clip-vit-large-patch14-336 folder (only if the checkpoint lacks the tower)")
    p.add_argument("--dtype", default=None, choices=list(DTYPES),
                   help="store the weights in this dtype (default: as in the checkpoint)")


def _hpsv2(args):
    from mirokit.rewards.clip_convert import convert_hpsv2

    return convert_hpsv2(args.src, args.out, processor=args.processor)


def _hpsv2_flags(p) -> None:
    p.add_argument("--processor", default=None,
                   help="folder or hub id with the ViT-H-14 tokenizer and image processor (saved into OUT)")


def _aesthetic(args):
    from mirokit.rewards.clip_convert import convert_aesthetic_head

    return convert_aesthetic_head(args.src, args.out)


converter("image-reward", convert=_image_reward, source="ImageReward.pt", out="output folder",
          help="THUDM/ImageReward's ImageReward.pt -> a BLIP folder for image_reward_score",
          description="Maps ImageReward.pt (+ med_config.json, read from beside it unless --med-config) onto "
                      "transformers' BLIP and writes OUT/config.json, OUT/model.safetensors and, with --tokenizer, "
                      "the tokenizer files; `--option image_reward_score.model=OUT` then scores offline.",
          flags=_image_reward_flags)
converter("vqa-score", convert=_vqa, source="the clip-flant5 checkpoint folder", out="output folder",
          help="zhiqiulin/clip-flant5-* -> mirokit's CLIP-T5 folder for vqa_score",
          description="Splits a clip-flant5 checkpoint (pytorch_model*.bin read with weights_only=True, or "
                      "safetensors) shard by shard into vision_tower/, language_model/, mm_projector.safetensors "
                      "and tokenizer/ (see docs/REWARDS.md).",
          flags=_vqa_flags)
converter("hpsv2", convert=_hpsv2, source="HPS_v2.1_compressed.pt (or HPS_v2_compressed.pt)", out="output folder",
          help="HPSv2's open_clip checkpoint (HPS_v2.1_compressed.pt) -> a transformers CLIP folder",
          description="Maps the open_clip ViT-H-14 state dict onto transformers' CLIPModel and writes "
                      "OUT/config.json + OUT/model.safetensors (and the tokenizer and image processor with "
                      "--processor), for `--option hpsv2_score.model=OUT`.",
          flags=_hpsv2_flags)
converter("aesthetic", convert=_aesthetic, source="the .pth head", out="output .safetensors file",
          help="the LAION aesthetic MLP head (.pth) -> safetensors for aesthetic_score",
          description="Rewrites the published sac+logos+ava1-l14-linearMSE.pth head as a float32 safetensors file "
                      "(keys layers.N.weight/bias), for `--option aesthetic_score.head=OUT`.")
