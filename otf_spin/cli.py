"""`otf-spin` command line: one entry point, lazily imported subcommands.

Errors in user input (YAML, data files, units) print one line
``otf-spin: error: <file>: <key>: <reason>`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def _cmd_validate(args) -> int:
    from otf_spin.io.schemas import describe, validate_any

    if args.describe:
        print(describe(args.describe))
        return 0
    if not args.file:
        raise FileNotFoundError("validate: give a YAML file (or --describe KIND)")
    kind, _ = validate_any(args.file)
    print(f"{args.file}: valid {kind} file")
    return 0


def _cmd_label(args) -> int:
    from otf_spin import oracles
    from otf_spin.io.extxyz import read_frames, write_frames
    from otf_spin.oracles import label_frames

    oracle = oracles.load_file(args.oracle)
    frames = read_frames(args.data, moment=getattr(oracle, "moment", None))
    labelled = label_frames(oracle, frames, progress=not args.quiet)
    write_frames(args.out, labelled)
    print(f"labelled {len(labelled)} frames with oracle '{oracle.name}' -> {args.out}")
    return 0


def _cmd_paper_sets(args) -> int:
    from otf_spin.learning.paper_sets import PAPER_SETS, write_paper_sets

    names = PAPER_SETS if args.sets == "all" else args.sets.split(",")
    write_paper_sets(args.out, names, seed=args.seed, scale=args.scale,
                     progress=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from otf_spin import __version__

    parser = argparse.ArgumentParser(
        prog="otf-spin",
        description="On-the-fly machine-learned atomistic spin dynamics. Internal units: "
                    "Å, eV, ps, K, μB, T; data fields in eV/μB.")
    parser.add_argument("--version", action="version", version=f"otf-spin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check any otf-spin YAML file against its schema",
                       description="Check an oracle, run or model YAML file: unknown or "
                                   "duplicate keys, types, units and files.")
    p.add_argument("file", nargs="?", help="YAML file")
    p.add_argument("--describe", metavar="KIND",
                   help="print the keys of a schema with units and defaults instead (an "
                        "oracle type such as 'heisenberg')")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("label", help="label extxyz frames with an oracle",
                       description="Label every frame of an extxyz file with an oracle "
                                   "(energy relative to FM in eV, transverse fields in eV/μB, "
                                   "moments in μB, forces in eV/Å).")
    p.add_argument("--oracle", required=True, help="oracle YAML file (one oracle block)")
    p.add_argument("--data", required=True, help="input extxyz with per-atom magmoms (μB)")
    p.add_argument("--out", required=True, help="output extxyz (written atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_label)

    p = sub.add_parser("paper-sets", help="generate and label the paper's bcc Fe test sets",
                       description="Generate the bcc Fe data sets of the paper's Sec. III B "
                                   "(random, Eq. 41 moments, displaced, thermal MC, 54-atom) "
                                   "and label them with the embedded Heisenberg oracle.")
    p.add_argument("--out", default="data/paper", help="output folder (default: data/paper)")
    p.add_argument("--sets", default="all", help="comma-separated set names or 'all'")
    p.add_argument("--seed", type=int, default=2024, help="random seed (default 2024)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="scale the number of test frames (e.g. 0.1 for a quick look)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_paper_sets)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from otf_spin.io.config import ConfigError
    from otf_spin.io.extxyz import DataFileError
    from otf_spin.oracles.base import OracleFailure

    try:
        return args.func(args)
    except (ConfigError, DataFileError, OracleFailure, FileNotFoundError) as exc:
        print(f"otf-spin: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("otf-spin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
