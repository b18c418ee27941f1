"""The flags every per-image batch job shares (`mirokit score`, `mirokit recaption`): inputs, --out, batching,
workers, --shard-index / --num-shards (combined with torchrun ranks) and the device."""

from __future__ import annotations


def add_unit_job_flags(p, *, batch_size: int) -> None:
    """inputs, --out, --batch-size, --num-workers, --shard-index, --num-shards, --device, --chunk-rows."""
    p.add_argument("inputs", nargs="*", help="input shards/files (brace patterns like shard-{000..009}.tar allowed)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"images per batch (default {batch_size})")
    p.add_argument("--num-workers", type=int, default=2, help="decoding worker processes (default 2)")
    p.add_argument("--shard-index", type=int, default=0, help="which part of the units this job takes (default 0)")
    p.add_argument("--num-shards", type=int, default=1, help="into how many parts the units are split (default 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--chunk-rows", type=int, default=10_000, help="rows per unit for .jsonl/.parquet inputs")


def unit_job_fields(args, dist) -> dict:
    """The UnitJobConfig fields of the parsed flags, this rank's share under torchrun (`dist` from
    mirokit.distributed.init_distributed)."""
    from mirokit.distributed import job_shard

    if not args.inputs or not args.out:
        raise ValueError("give input files and --out")
    shard_index, num_shards = job_shard(args.shard_index, args.num_shards, dist)
    return {"inputs": args.inputs, "out_dir": args.out, "batch_size": args.batch_size, "num_workers": args.num_workers,
            "shard_index": shard_index, "num_shards": num_shards, "chunk_rows": args.chunk_rows,
            "progress": dist.is_main}


def job_summary(manifest: dict, verb: str, out: str) -> str:
    """The line a job prints at the end: counts, errors by kind, units already done."""
    import json

    c = manifest["counts"]
    return (f"{verb} {c[verb]} of {c['rows']} samples in {len(manifest['units'])} unit(s); {c['errors']} errors"
            + (f" ({json.dumps(manifest['errors_by_kind'])})" if c["errors"] else "")
            + f"; {manifest['skipped_done']} unit(s) were already done; outputs in {out}")


def run_unit_job(args, make_config, run, verb: str) -> int:
    """Start torch.distributed when under torchrun, build the job's config with `make_config(fields, device)`
    (fields: unit_job_fields), run it, and print the job's summary line (`verb`: its count, e.g. "scored")."""
    from mirokit.distributed import cleanup, init_distributed

    dist = init_distributed(args.device)
    cfg = make_config(unit_job_fields(args, dist), str(dist.device))
    try:
        manifest = run(cfg)
    finally:
        cleanup()
    print(job_summary(manifest, verb, args.out))
    return 0
