"""`mirokit calibrate fit|apply`: 64 quantile bins per reward over scored parquet files (mirokit.data.calibration)."""

from __future__ import annotations

from mirokit.cli.commands import COMMANDS, add_group


@COMMANDS.register("calibrate")
def add_parser(sub) -> None:
    """Add the `mirokit calibrate` group (fit, apply) to `sub` (the top-level sub-commands)."""
    add_group(sub, "calibrate", metavar="ACTION", help="fit or apply the 64-bin reward calibration",
              description="fit: stream over the parquet files written by `mirokit score` (memory holds only each "
                          "reward's unique values) and write a calibration JSON with 64 quantile bins and statistics "
                          "per reward. apply: map raw scores to multiples of 1/63 (NaN stays NaN) and write "
                          "calibrated parquet files.",
              epilog="examples:\n  mirokit calibrate fit scores/*.parquet --out calibration.json\n"
                     "  mirokit calibrate apply scores/*.parquet --calibration calibration.json --out calibrated/")


def _inputs(p) -> None:
    p.add_argument("inputs", nargs="+", help="parquet files (or folders of them) from `mirokit score`")
    p.add_argument("--reward", action="append", default=None, metavar="KEY",
                   help="reward column(s) to use (default: every float column except key/caption/error)")


@COMMANDS.register("calibrate.fit")
def add_fit_parser(csub) -> None:
    """Add the `mirokit calibrate fit` parser to `csub` (the sub-commands of its group)."""
    p = csub.add_parser("fit", help="fit a calibration (64 quantile bins per reward) and write it as JSON",
                        description="Fit 64 quantile bins per reward on the unique raw scores of the inputs.")
    _inputs(p)
    p.add_argument("--caption", action="append", default=[], metavar="NAME",
                   help="pool the NAME_<reward> columns (scores of a named caption, e.g. synthetic) into "
                        "<reward>'s bins, one calibration for every caption (repeatable)")
    p.add_argument("--out", required=True, help="output JSON path")
    p.set_defaults(func=run_fit)


@COMMANDS.register("calibrate.apply")
def add_apply_parser(csub) -> None:
    """Add the `mirokit calibrate apply` parser to `csub` (the sub-commands of its group)."""
    p = csub.add_parser("apply", help="map raw scores to calibrated targets and write parquet files",
                        description="Map each reward column to multiples of 1/63 with a fitted calibration.")
    _inputs(p)
    p.add_argument("--calibration", required=True, help="the calibration JSON written by fit")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_apply)


def run_fit(args) -> int:
    """Run `mirokit calibrate fit` with parsed `args`: fit the bins and write the calibration JSON; returns the exit
    status."""
    from mirokit.data.calibration import describe_calibration, fit_calibration_file

    calibration = fit_calibration_file(args.inputs, args.out, args.reward, tuple(args.caption))
    print(describe_calibration(calibration))
    print(f"wrote {args.out}")
    return 0


def run_apply(args) -> int:
    """Run `mirokit calibrate apply` with parsed `args`: write the calibrated parquet files; returns the exit status."""
    from mirokit.data.calibration import Calibration, apply_calibration, parquet_files

    written = apply_calibration(parquet_files(args.inputs), Calibration.load(args.calibration), args.out, args.reward)
    print(f"wrote {len(written)} calibrated file(s) to {args.out}")
    return 0
