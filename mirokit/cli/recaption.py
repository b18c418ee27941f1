"""`mirokit recaption`: synthetic captions for every image with any transformers VLM (or a plugin's captioner)."""

from __future__ import annotations

import argparse

from mirokit.cli.commands import COMMANDS
from mirokit.cli.unit_flags import add_unit_job_flags, run_unit_job
from mirokit.dtypes import DTYPES


@COMMANDS.register("recaption")
def add_parser(sub) -> None:
    """Add the `mirokit recaption` parser to `sub` (the top-level sub-commands)."""
    from mirokit.captions.shorten import SHORTEN_INSTRUCTION
    from mirokit.captions.vlm import HINT, INSTRUCTION, SHORT_INSTRUCTION

    p = sub.add_parser(
        "recaption", help="synthetic captions with any transformers VLM (resumable, splittable like score)",
        description="Caption every image of webdataset tar shards, an image folder + captions JSONL or a parquet "
                    "table with a chat vision-language model loaded through transformers' AutoProcessor + "
                    "AutoModelForImageTextToText (SmolVLM, LLaVA, Qwen2-VL, InternVL, PaliGemma, ...; by hub id or "
                    "local folder), optionally hinting the original caption as alt-text, with an optional short "
                    "pass. Writes OUT/<unit>.parquet (key, caption_source, caption, short_caption, error) and a "
                    "manifest; --write-shards also writes OUT/shards/<shard>.tar with {key}.NAME.txt added, for "
                    "`mirokit score --caption NAME` and `mirokit encode --caption NAME`. Restarting the same "
                    "command skips finished units; under torchrun each rank takes its own units.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  mirokit recaption 'data/{00000..00099}.tar' --model HuggingFaceTB/SmolVLM-256M-Instruct --short "
               "--write-shards --out captions/\n"
               "  mirokit recaption captions.jsonl --model /models/llava-v1.6-mistral-7b-hf --dtype bf16 "
               "--device cuda --out captions/\n"
               "  mirokit recaption data/ --model /models/llava-v1.6-mistral-7b-hf \\\n"
               "      --shorten-model /models/Qwen2.5-1.5B-Instruct --write-shards --out captions/\n"
               "  mirokit recaption shards/ --captioner world_detector --write-shards --out recaptioned/")
    add_unit_job_flags(p, batch_size=8)
    p.add_argument("--captioner", default="vlm", help="captioner kind (default vlm; the shapes world: world_detector)")
    p.add_argument("--model", default=None, help="the VLM: hub id or local folder (captioner vlm)")
    p.add_argument("--instruction", default=INSTRUCTION, help=f"what the VLM is asked (default {INSTRUCTION!r})")
    p.add_argument("--hint", default=HINT, help="appended with the original caption as {alt_text} "
                                                f"(default {HINT!r})")
    p.add_argument("--no-hint", action="store_true", help="do not show the VLM the original caption")
    p.add_argument("--short", action="store_true", help="also write a short caption per image ({key}.NAME_short.txt)")
    p.add_argument("--short-instruction", default=SHORT_INSTRUCTION,
                   help=f"the short pass's instruction (default {SHORT_INSTRUCTION!r})")
    p.add_argument("--shorten-model", default=None, metavar="MODEL",
                   help="a text-only causal LM (hub id or folder) that shortens each long caption instead of the "
                        "VLM's short pass (implies --short)")
    p.add_argument("--shorten-instruction", default=SHORTEN_INSTRUCTION,
                   help=f"the shortening request, with the long caption as {{caption}} "
                        f"(default {SHORTEN_INSTRUCTION!r})")
    p.add_argument("--shorten-max-new-tokens", type=int, default=40,
                   help="tokens the shortening model generates per caption (default 40)")
    p.add_argument("--max-new-tokens", type=int, default=96, help="tokens generated per caption (default 96)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding (greedy: deterministic)")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample (default 1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="with --sample (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="with --sample (default 0)")
    p.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="the VLM's weights (default fp32)")
    p.add_argument("--no-chat-template", action="store_true",
                   help="send the instruction as it is "
                        "(task-prompt models such as Florence-2: <MORE_DETAILED_CAPTION>)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own code")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="another captioner option (repeatable), e.g. min_score=0.6 for world_detector")
    p.add_argument("--name", default="synthetic", help="the caption's name: {key}.NAME.txt (default synthetic)")
    p.add_argument("--write-shards", action="store_true",
                   help="also write OUT/shards/<shard>.tar: each input shard with the captions added")
    p.set_defaults(func=run)


def captioner_options(args, device: str) -> dict:
    """The captioner's keyword options from the flags (VLM flags only for the `vlm` captioner)."""
    from mirokit.options import parse_values

    options = parse_values(args.option, "--option")
    if args.captioner != "vlm":
        return options
    if not args.model:
        raise ValueError("--model is required for the vlm captioner (a hub id or a local folder)")
    return {"model": args.model, "instruction": args.instruction, "hint": args.hint, "use_hint": not args.no_hint,
            "short_instruction": args.short_instruction, "max_new_tokens": args.max_new_tokens,
            "do_sample": args.sample, "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed,
            "dtype": args.dtype, "device": device, "chat_template": not args.no_chat_template,
            "trust_remote_code": args.trust_remote_code, **options}


def shortener_options(args, device: str) -> dict:
    """The TextShortener's keyword options from the --shorten-* flags; {} without --shorten-model."""
    if not args.shorten_model:
        return {}
    return {"model": args.shorten_model, "instruction": args.shorten_instruction,
            "max_new_tokens": args.shorten_max_new_tokens, "dtype": args.dtype, "device": device,
            "trust_remote_code": args.trust_remote_code}


def run(args) -> int:
    """Run `mirokit recaption` with parsed `args`; returns the exit status."""
    from mirokit.captions.job import RecaptionJobConfig, run_recaption_job

    def config(fields: dict, device: str) -> RecaptionJobConfig:
        return RecaptionJobConfig(**fields, captioner=args.captioner, captioner_options=captioner_options(args, device),
                                  name=args.name, short=args.short, write_shards=args.write_shards,
                                  shortener_options=shortener_options(args, device))

    return run_unit_job(args, config, run_recaption_job, "captioned")
