"""`mirokit calibrate fit|apply`: 64 quantile bins per reward over scored parquet files."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="fit or apply the 64-bin reward calibration",
        description="fit: stream over the parquet files written by `mirokit score` (memory holds only each reward's "
                    "unique values) and write a calibration JSON with 64 quantile bins and statistics per reward. "
                    "apply: map raw scores to multiples of 1/63 (NaN stays NaN) and write calibrated parquet files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mirokit calibrate fit scores/*.parquet --out calibration.json\n"
               "  mirokit calibrate apply scores/*.parquet --calibration calibration.json --out calibrated/",
    )
    p.add_argument("action", choices=["fit", "apply"], help="fit a calibration, or apply one")
    p.add_argument("inputs", nargs="+", help="parquet files (or folders of them) from `mirokit score`")
    p.add_argument("--reward", action="append", default=None, metavar="KEY",
                   help="reward column(s) to use (default: every float column except key/caption/error)")
    p.add_argument("--caption", action="append", default=[], metavar="NAME",
                   help="fit: pool the NAME_<reward> columns (scores of a named caption, e.g. synthetic) into "
                        "<reward>'s bins, one calibration for every caption (repeatable)")
    p.add_argument("--calibration", help="apply: the calibration JSON written by fit")
    p.add_argument("--out", required=True, help="fit: output JSON path; apply: output folder")
    p.set_defaults(func=run)


def _files(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(p.glob("*.parquet"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    if not files:
        raise ValueError("no parquet files found in the inputs")
    return files


def _reward_columns(schema, requested: list[str] | None, path: Path) -> list[str]:
    import pyarrow as pa

    floats = [f.name for f in schema if pa.types.is_floating(f.type) and f.name not in ("key", "caption", "error")]
    if requested is None:
        return floats
    for key in requested:
        if key not in schema.names:
            raise ValueError(f"unknown reward key {key!r} in {path}; columns: {', '.join(floats) or 'none'}")
    return requested


def run(args) -> int:
    import pyarrow.parquet as pq

    from mirokit.data.calibration import Calibration, RewardAccumulator

    files = _files(args.inputs)
    if args.action == "fit":
        accumulators: dict[str, RewardAccumulator] = {}
        prefixes = tuple(f"{name}_" for name in args.caption)
        for path in files:
            pf = pq.ParquetFile(path)
            keys = _reward_columns(pf.schema_arrow, args.reward, path)
            if args.reward is None:  # named-caption columns are pooled, not calibrated on their own
                keys = [k for k in keys if not k.startswith(prefixes)]
            pooled = {k: [p + k for p in prefixes if p + k in pf.schema_arrow.names] for k in keys}
            for key in keys:
                accumulators.setdefault(key, RewardAccumulator(key))
            columns = [*keys, *(c for cols in pooled.values() for c in cols)]
            for batch in pf.iter_batches(columns=columns, batch_size=65536):
                for key in keys:
                    for column in [key, *pooled[key]]:
                        accumulators[key].add(batch.column(column).to_numpy(zero_copy_only=False))
        if not accumulators:
            raise ValueError("no reward columns found")
        cal = Calibration({k: a.finish() for k, a in accumulators.items()})
        cal.save(args.out)
        for key, rc in cal.rewards.items():
            print(f"{key}: {rc.count} scores ({rc.missing} missing), mean {rc.mean:.4g}, std {rc.std:.4g}, "
                  f"range [{rc.min:.4g}, {rc.max:.4g}]")
        print(f"wrote {args.out}")
        return 0
    if not args.calibration:
        raise ValueError("apply needs --calibration FILE")
    import pyarrow as pa

    cal = Calibration.load(args.calibration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        table = pq.read_table(path)
        keys = _reward_columns(table.schema, args.reward, path)
        for key in keys:
            values = cal.apply(key, table.column(key).to_numpy(zero_copy_only=False))
            table = table.set_column(table.schema.get_field_index(key), key, pa.array(values, pa.float32()))
        pq.write_table(table, out / path.name)
    print(f"wrote {len(files)} calibrated file(s) to {out}")
    return 0
