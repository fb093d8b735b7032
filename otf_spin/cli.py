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

    from otf_spin.io.config import ConfigError

    oracle = oracles.load_file(args.oracle)
    frames = read_frames(args.data, moment=oracle.moment)
    _check_output(args.out)
    try:
        labelled = label_frames(oracle, frames, progress=not args.quiet)
    except ConfigError as exc:          # the oracle's settings do not fit these structures
        raise ConfigError(f"{args.oracle}: {exc} (labelling {args.data})") from None
    write_frames(args.out, labelled)
    print(f"labelled {len(labelled)} frames with oracle '{oracle.name}' -> {args.out}")
    return 0


def _cmd_train(args) -> int:
    import time
    import warnings

    import numpy as np

    from otf_spin.io.config import validate_file
    from otf_spin.io.extxyz import read_frames
    from otf_spin.model.config import MODEL, build_model

    from otf_spin.io.extxyz import DataFileError

    settings = validate_file(args.config, MODEL) if args.config else MODEL.validate({})
    frames = read_frames(args.data)
    if not any(f.energy is not None or f.fields is not None for f in frames):
        raise DataFileError(f"{args.data}: no frame carries labels (energy or fields) to "
                            "train on")
    _check_output(args.out)
    model = build_model(settings)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(frames)
    for w in caught:
        print(f"otf-spin: warning: {w.message}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    if getattr(model, "selection", None):
        from otf_spin.model.selection import describe

        print(describe(model.selection))
    model.save(args.out)
    e_err, b_err = [], []
    for f in frames:
        p = model.predict(f.system, stds=False)
        if f.energy is not None:
            e_err.append((p["energy"] - f.energy) / len(f.system))
        if f.fields is not None:
            b_err.append(p["fields"] - f.fields)
    rmse = lambda x: 1e3 * float(np.sqrt(np.mean(np.square(x)))) if len(x) else float("nan")  # noqa: E731
    print(f"trained on {len(frames)} frames ({sum(len(f.system) for f in frames)} atoms): "
          f"sparse {[len(S) for S in model.sparse]}, fit {elapsed:.2f} s; training RMSE "
          f"energy {rmse(e_err):.4f} meV/atom, field "
          f"{rmse(np.concatenate(b_err) if b_err else []):.4f} meV/μB -> {args.out}")
    return 0


def _cmd_predict(args) -> int:
    import numpy as np

    from otf_spin.io.extxyz import DataFileError, Frame, read_frames, write_frames
    from otf_spin.model import load
    from otf_spin.progress import progress_bar

    model = load(args.model)
    out = []
    frames = read_frames(args.data)
    _check_output(args.out)
    for index, frame in enumerate(progress_bar(frames, "predicting", enabled=not args.quiet)):
        with np.errstate(over="ignore", invalid="ignore"):    # checked just below
            p = model.predict(frame.system, stds=not args.no_std)
        labels = {k: p[k] for k in ("energy", "fields", "energy_std", "fields_std") if k in p}
        if not all(np.isfinite(v).all() for v in labels.values()):
            raise DataFileError(f"{args.model}: predictions for {args.data} frame {index} are "
                                "not finite (the model's numbers overflow); nothing written")
        out.append(Frame(frame.system, labels, dict(frame.info)))
    write_frames(args.out, out)
    print(f"predicted {len(out)} frames -> {args.out}")
    return 0


def _cmd_run(args) -> int:
    from otf_spin.io.config import ConfigError
    from otf_spin.io.runconfig import load_run
    from otf_spin.runner import run

    cfg = load_run(args.file)
    try:
        run(cfg, progress=not args.quiet, fresh=args.fresh)
    except ConfigError as exc:          # checks that need the built system (time step)
        raise ConfigError(f"{args.file}: {exc}") from None
    except ValueError as exc:           # settings the run refuses (paths, integrator)
        if type(exc) is not ValueError:     # data and model errors name their own file
            raise
        raise ValueError(f"{args.file}: {exc}") from None
    return 0


def _cmd_generate(args) -> int:
    from otf_spin.learning.generate import generate, load_generate

    generate(load_generate(args.file), progress=not args.quiet)
    return 0


def _cmd_paper_sets(args) -> int:
    from otf_spin.learning.paper_sets import PAPER_SETS, write_paper_sets

    if not 0 < args.scale <= 100:           # NaN fails too
        raise ValueError(f"--scale: {args.scale} is not in (0, 100]")
    if args.seed < 0:
        raise ValueError(f"--seed: {args.seed} is negative")
    names = PAPER_SETS if args.sets == "all" else args.sets.split(",")
    write_paper_sets(args.out, names, seed=args.seed, scale=args.scale,
                     progress=not args.quiet)
    return 0


def _cmd_info(args) -> int:
    import json

    from otf_spin.io.info import describe, format_info

    for k, path in enumerate(args.files):
        summary = describe(path)
        print(json.dumps(summary, indent=1, default=str) if args.json
              else ("\n" if k else "") + format_info(summary))
    return 0


def _cmd_plot(args) -> int:
    from otf_spin.io.plot import plot_files

    plot_files(args.files, args.out, kind=args.kind, reference=args.reference, dpi=args.dpi)
    print(f"plot -> {args.out}")
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

    p = sub.add_parser("train", help="fit a GAP-SOSO model to labelled extxyz frames",
                       description="Fit the GAP-SOSO exchange model (energies and transverse "
                                   "fields) and write the model file (HDF5). Without "
                                   "--config the validated defaults are used.")
    p.add_argument("--data", required=True, help="training extxyz (energy and/or fields)")
    p.add_argument("--out", required=True, help="model file to write (HDF5)")
    p.add_argument("--config", help="model YAML (otf-spin validate --describe model)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="predict energies, fields and their uncertainty",
                       description="Predict energy (eV, rel. to FM), fields (eV/μB) and "
                                   "their standard deviations for every frame.")
    p.add_argument("--model", required=True, help="model file from otf-spin train")
    p.add_argument("--data", required=True, help="input extxyz with magmoms (μB)")
    p.add_argument("--out", required=True, help="output extxyz")
    p.add_argument("--no-std", action="store_true", help="skip the uncertainties (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("run", help="spin dynamics (LLG) or Monte Carlo from a run file",
                       description="Run stochastic LLG or Metropolis MC as configured in a "
                                   "YAML run file; writes an H5MD trajectory.")
    p.add_argument("file", help="run YAML (otf-spin validate checks it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--fresh", action="store_true",
                   help="on-the-fly runs: ignore (delete) an existing checkpoint instead of "
                        "resuming from it")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("generate", help="generate and label a training set automatically",
                       description="Pick training cells free of periodic-image ambiguity, "
                                   "sample spin configurations by Monte Carlo on a cheap "
                                   "provider, select a diverse subset, label it with the "
                                   "oracle (over the MPI ranks) and write the training store "
                                   "and an extxyz copy. A rerun resumes.")
    p.add_argument("file", help="generate YAML (otf-spin validate --describe generate)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_generate)

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

    p = sub.add_parser("info", help="what an otf-spin file is and what it holds",
                       description="Kind, format version, contents, provenance (oracle, "
                                   "settings, versions) and size of trajectory, training "
                                   "store, model, checkpoint or extxyz files.")
    p.add_argument("files", nargs="+", metavar="FILE", help="file(s) to describe")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("plot", help="plot runs, M(T), Binder cumulants, parity, stores",
                       description="Plot otf-spin files (needs matplotlib: pip install "
                                   "'otf-spin[plot]'); the format follows the suffix of "
                                   "--out (.png, .svg, .pdf). One run file: |M|, E, T_spin "
                                   "and, on the fly, σ with threshold and oracle calls; "
                                   "several run files: M(T) and Binder U_L(T) of MC runs; "
                                   "predict output with --reference: energy and field "
                                   "parity; a training store: labels over time.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="H5MD run file(s), a training store, or predict output (extxyz)")
    p.add_argument("--out", required=True, help="image to write (.png, .svg or .pdf)")
    p.add_argument("--reference", help="labelled extxyz that the predictions are compared "
                                       "with (parity plot)")
    p.add_argument("--kind", choices=("auto", "run", "temperature", "parity", "store"),
                   default="auto", help="plot to make (default: from the files)")
    p.add_argument("--dpi", type=float, default=110, help="resolution of PNG output")
    p.set_defaults(func=_cmd_plot)
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
    except (ConfigError, DataFileError, OracleFailure, OSError, ValueError) as exc:
        print(f"otf-spin: error: {_one_line(exc)}", file=sys.stderr)
        return _stop_all_ranks(EXIT_USAGE)
    except MemoryError as exc:
        print(f"otf-spin: error: out of memory ({_one_line(exc) or 'allocation failed'})",
              file=sys.stderr)
        return _stop_all_ranks(EXIT_USAGE)
    except KeyboardInterrupt:
        print("otf-spin: interrupted", file=sys.stderr)
        return _stop_all_ranks(130)
    except Exception:
        if _mpi_size() > 1:          # a rank that dies alone would leave the others waiting
            import traceback

            traceback.print_exc()
            return _stop_all_ranks(1)
        raise


def _check_output(path) -> None:
    """Before computing: ``path`` can be written (not a folder; its folder exists or can be
    made, and is writable). Raises OSError naming the path."""
    import errno
    import os

    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(errno.EACCES, "folder not writable", folder)


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (OSError: the file — the target of a rename —
    and the reason)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename2 or exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _mpi_size() -> int:
    from otf_spin.parallel import world

    try:
        return world().size
    except RuntimeError:
        return 1


def _stop_all_ranks(code: int) -> int:
    """Under MPI with several ranks, abort them all (an error seen by one rank must not
    leave the others waiting in a collective); else return ``code``."""
    if _mpi_size() > 1:
        from otf_spin.parallel import world

        sys.stderr.flush()
        world().Abort(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
