"""`otf-spin` command line: one entry point, a sub-command per ``_cmd_*`` function (its
docstring is the sub-command's help).

Errors in user input (YAML, data files, units) print one line
``otf-spin: error: <file>: <key>: <reason>`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys

from otf_spin import __version__, oracles
from otf_spin.config.engine import validate_file
from otf_spin.config.model import MODEL
from otf_spin.core import ConfigError, DataFileError, Frame, OracleFailure
from otf_spin.factory import load_generate, load_run
from otf_spin.io import info
from otf_spin.io.atomic import KIND_NAMES, check_outputs, file_kind
from otf_spin.io.extxyz import check_energy_reference, read_frames, write_frames
from otf_spin.io.plot import plot_files
from otf_spin.learning.generate import generate
from otf_spin.learning.paper_sets import PAPER_SETS, write_paper_sets
from otf_spin.learning.store import TrainingStore
from otf_spin.model import load, save, selection
from otf_spin.model.domain import extrapolation_warning
from otf_spin.model.factory import build_model
from otf_spin.oracles import label_frames
from otf_spin.parallel import world
from otf_spin.progress import progress_bar
from otf_spin.runner import run
from otf_spin.yaml_kind import describe, validate_any

EXIT_USAGE = 2

# At exit, CPython's last cyclic garbage collection walks every object the process made —
# numpy's, scipy's and h5py's modules included: 0.15-0.2 s of a 2.5 s README example on a
# 2-core VM (docs/otf.md). Frozen objects are left to the operating system instead; the
# run's files are closed and flushed before that (context managers), so nothing is lost.
atexit.register(gc.freeze)


def _cmd_validate(args) -> int:
    """Check any otf-spin YAML file against its schema.

    Check an oracle, run or model YAML file: unknown or duplicate keys, types, units and
    files.
    """
    if args.describe:
        print(describe(args.describe))
        return 0
    if not args.file:
        raise FileNotFoundError("validate: give a YAML file (or --describe KIND)")
    kind, _ = validate_any(args.file)
    print(f"{args.file}: valid {kind} file")
    return 0


#: `otf-spin label` rewrites its output at most this often (s), and at the end: rewriting
#: it after every frame made labelling quadratic (400 cheap frames: 45 s for 5 s of labels)
LABEL_WRITE_SECONDS = 10.0


def _cmd_label(args) -> int:
    """Label extxyz frames with an oracle.

    Label every frame of an extxyz file with an oracle (energy relative to FM in eV,
    transverse fields in eV/μB, moments in μB, forces in eV/Å).
    """
    import os
    import time

    if args.retries < 0:
        raise ValueError(f"--retries: {args.retries} is negative")
    oracle = oracles.load_file(args.oracle)
    frames = read_frames(args.data, moment=oracle.moment)
    _check_output(args.out, "extxyz", ("--oracle", args.oracle), ("--data", args.data))
    done = []
    if os.path.exists(args.out) and os.path.getsize(args.out):
        try:
            done = oracles.labelled_prefix(read_frames(args.out), frames, oracle)
        except (ValueError, KeyError, IndexError):  # another tool's file: replaced
            pass
        print(f"# {len(done)} of {len(frames)} frames already labelled in {args.out} by this "
              "oracle: going on from there" if done else f"# {args.out} holds no labels of "
              f"this oracle for the first frames of {args.data}: replacing it",
              file=sys.stderr)
    state = {"frames": done, "written": len(done), "at": time.monotonic()}

    def written(out):                   # at most every LABEL_WRITE_SECONDS, and at the end
        state["frames"] = out
        if time.monotonic() - state["at"] >= LABEL_WRITE_SECONDS:
            write_frames(args.out, out)
            state["written"], state["at"] = len(out), time.monotonic()

    try:
        labelled = label_frames(oracle, frames, progress=not args.quiet, retries=args.retries,
                                labelled=done, written=written)
    except ConfigError as exc:          # the oracle's settings do not fit these structures
        raise ConfigError(f"{args.oracle}: {exc} (labelling {args.data})") from None
    except OracleFailure as exc:        # the labels made so far are in args.out
        n = len(state["frames"])
        raise OracleFailure(exc.job, exc.kind, f"{exc.reason} (after {args.retries + 1} "
                            f"tries; " + (f"the {n} frames before it are in {args.out}: the "
                                          "same command goes on from there)" if n else
                                          "nothing was written)")) from None
    finally:                            # (also on Ctrl-C: no finished label is lost)
        if len(state["frames"]) > state["written"]:
            write_frames(args.out, state["frames"])
    if not frames[len(done):]:          # (nothing new: the file is as it was)
        write_frames(args.out, labelled)
    print(f"labelled {len(labelled)} frames with oracle '{oracle.name}' -> {args.out}")
    return 0


def _cmd_train(args) -> int:
    """Fit a GAP-SOSO model to labelled extxyz frames.

    Fit the GAP-SOSO exchange model (energies and transverse fields) and write the model
    file (HDF5). Without --config the validated defaults are used.
    """
    import time
    import warnings

    import numpy as np

    settings = validate_file(args.config, MODEL, "model") if args.config else MODEL.validate({})
    frames = _read_data(args.data)
    if not any(f.energy is not None or f.fields is not None for f in frames):
        raise DataFileError(f"{args.data}: no frame carries labels (energy or fields) to "
                            "train on")
    check_energy_reference(frames, args.data)
    _check_output(args.out, "model", ("--data", args.data), ("--config", args.config))
    model = build_model(settings)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(frames)
    for w in caught:
        print(f"otf-spin: warning: {w.message}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    if getattr(model, "selection", None):
        print(selection.describe(model.selection))
    save(model, args.out)
    e_err, b_err = [], []
    for f in frames:
        p = model.predict(f.system, stds=False)
        if f.energy is not None:
            e_err.append((p["energy"] - f.energy) / len(f.system))
        if f.fields is not None:
            b_err.append(p["fields"] - f.fields)
    def rmse(x, unit):
        return f"{1e3 * float(np.sqrt(np.mean(np.square(x)))):.4f} {unit}" if len(x) else "n/a"

    print(f"trained on {len(frames)} frames ({sum(len(f.system) for f in frames)} atoms): "
          f"sparse {[len(S) for S in model.sparse]}, fit {elapsed:.2f} s; training RMSE "
          f"energy {rmse(e_err, 'meV/atom')}, field "
          f"{rmse(np.concatenate(b_err) if b_err else [], 'meV/μB')} -> {args.out}")
    return 0


def _cmd_predict(args) -> int:
    """Predict energies, fields and their uncertainty.

    Predict energy (eV, rel. to FM), fields (eV/μB) and their standard deviations for
    every frame.
    """
    import numpy as np

    model = load(args.model)
    out, outside = [], []
    frames = _read_data(args.data)
    _check_output(args.out, "extxyz", ("--model", args.model), ("--data", args.data))
    for index, frame in enumerate(progress_bar(frames, "predicting", enabled=not args.quiet)):
        try:
            model.check_species(frame.system)
        except ValueError as exc:
            raise DataFileError(f"{args.data}: frame {index}: {exc}, {args.model}; nothing "
                                "written") from None
        with np.errstate(over="ignore", invalid="ignore"):    # checked just below
            p = model.predict(frame.system, stds=not args.no_std)
        labels = {k: p[k] for k in ("energy", "fields", "energy_std", "fields_std") if k in p}
        if not all(np.isfinite(v).all() for v in labels.values()):
            raise DataFileError(f"{args.model}: predictions for {args.data} frame {index} are "
                                "not finite (the model's numbers overflow); nothing written")
        phrase = model.domain().outside(frame.system)
        if phrase:
            outside.append((index, phrase))
        info = {k: v for k, v in frame.info.items() if k not in ("oracle", "oracle_settings")}
        out.append(Frame(frame.system, labels, dict(info, model=os.path.basename(args.model))))
    write_frames(args.out, out)
    if outside:
        more = f" and {len(outside) - 1} more lie" if len(outside) > 1 else " lies"
        print("otf-spin: warning: " + extrapolation_warning(
            f"{args.data}: frame {outside[0][0]}{more}", outside[0][1]), file=sys.stderr)
    print(f"predicted {len(out)} frames -> {args.out}")
    return 0


def _cmd_run(args) -> int:
    """Spin dynamics (LLG) or Monte Carlo from a run file.

    Run stochastic LLG or Metropolis MC as configured in a YAML run file; writes an H5MD
    trajectory.
    """
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
    """Generate and label a training set automatically.

    Pick training cells free of periodic-image ambiguity, sample spin configurations by
    Monte Carlo on a cheap provider, select a diverse subset, label it with the oracle
    (over the MPI ranks) and write the training store and an extxyz copy. A rerun
    resumes.
    """
    cfg = load_generate(args.file)
    try:
        generate(cfg, progress=not args.quiet)
    except ValueError as exc:           # settings it refuses (paths), as run
        if type(exc) is not ValueError:     # data and model errors name their own file
            raise
        raise ValueError(f"{args.file}: {exc}") from None
    return 0


def _cmd_paper_sets(args) -> int:
    """Generate and label the paper's bcc Fe test sets.

    Generate the bcc Fe data sets of the paper's Sec. III B (random, Eq. 41 moments,
    displaced, thermal MC, 54-atom) and label them with the embedded Heisenberg oracle.
    """
    if not 0 < args.scale <= 100:           # NaN fails too
        raise ValueError(f"--scale: {args.scale} is not in (0, 100]")
    if args.seed < 0:
        raise ValueError(f"--seed: {args.seed} is negative")
    names = PAPER_SETS if args.sets == "all" else args.sets.split(",")
    write_paper_sets(args.out, names, seed=args.seed, scale=args.scale,
                     progress=not args.quiet)
    return 0


def _cmd_info(args) -> int:
    """What an otf-spin file is and what it holds.

    Kind, format version, contents, provenance (oracle, settings, versions) and size of
    trajectory, training store, model, checkpoint or extxyz files.
    """
    for k, path in enumerate(args.files):
        summary = info.describe(path)
        print(json.dumps(summary, indent=1, default=str) if args.json
              else ("\n" if k else "") + info.format_info(summary))
    return 0


def _cmd_plot(args) -> int:
    """Plot runs, M(T), Binder cumulants, parity, stores.

    Plot otf-spin files (needs matplotlib: pip install 'otf-spin[plot]'); the format
    follows the suffix of --out (.png, .svg, .pdf). One run file: |M|, E, T_spin and, on
    the fly, σ with threshold and oracle calls; several run files: M(T) and Binder
    U_L(T) of MC runs; predict output with --reference: energy and field parity; a
    training store: labels over time.
    """
    plot_files(args.files, args.out, kind=args.kind, reference=args.reference, dpi=args.dpi)
    print(f"plot -> {args.out}")
    return 0


def _command(sub, func, name: str) -> argparse.ArgumentParser:
    """The sub-command ``name`` that runs ``func(args)``; its help is the first line of
    ``func``'s docstring (without the full stop), its description the rest."""
    first, _, rest = func.__doc__.partition("\n\n")
    p = sub.add_parser(name, help=first[0].lower() + first[1:].rstrip("."),
                       description=" ".join(rest.split()))
    p.set_defaults(func=func)
    return p


def _required(p, **helps) -> None:
    """Required options ``--name`` with their help texts, in order."""
    for name, text in helps.items():
        p.add_argument(f"--{name}", required=True, help=text)


def _quiet(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otf-spin",
        description="On-the-fly machine-learned atomistic spin dynamics. Internal units: "
                    "Å, eV, ps, K, μB, T; data fields in eV/μB.")
    parser.add_argument("--version", action="version", version=f"otf-spin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _command(sub, _cmd_validate, "validate")
    p.add_argument("file", nargs="?", help="YAML file")
    p.add_argument("--describe", metavar="KIND",
                   help="print the keys of a schema with units and defaults instead: "
                        "run, model, generate, or an oracle type such as 'heisenberg'")

    p = _command(sub, _cmd_label, "label")
    _required(p, oracle="oracle YAML file (one oracle block)",
              data="input extxyz with per-atom magmoms (μB)",
              out="output extxyz (written atomically every 10 s and at the end or on a "
                  "failure; a rerun of the same command goes on after the frames already "
                  "there)")
    p.add_argument("--retries", type=int, default=1, metavar="N",
                   help="retries of a failed oracle job before labelling stops (default 1)")
    _quiet(p)

    p = _command(sub, _cmd_train, "train")
    _required(p, data="training extxyz (energy and/or fields)",
              out="model file to write (HDF5)")
    p.add_argument("--config", help="model YAML (otf-spin validate --describe model)")

    p = _command(sub, _cmd_predict, "predict")
    _required(p, model="model file from otf-spin train",
              data="input extxyz with magmoms (μB)",
              out="output extxyz")
    p.add_argument("--no-std", action="store_true", help="skip the uncertainties (faster)")
    _quiet(p)

    p = _command(sub, _cmd_run, "run")
    p.add_argument("file", help="run YAML (otf-spin validate checks it)")
    _quiet(p)
    p.add_argument("--fresh", action="store_true",
                   help="on-the-fly runs: ignore (delete) an existing checkpoint instead of "
                        "resuming from it")

    p = _command(sub, _cmd_generate, "generate")
    p.add_argument("file", help="generate YAML (otf-spin validate --describe generate)")
    _quiet(p)

    p = _command(sub, _cmd_paper_sets, "paper-sets")
    p.add_argument("--out", default="data/paper", help="output folder (default: data/paper)")
    p.add_argument("--sets", default="all", help="comma-separated set names or 'all'")
    p.add_argument("--seed", type=int, default=2024, help="random seed (default 2024)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="scale the number of test frames (e.g. 0.1 for a quick look)")
    _quiet(p)

    p = _command(sub, _cmd_info, "info")
    p.add_argument("files", nargs="+", metavar="FILE", help="file(s) to describe")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = _command(sub, _cmd_plot, "plot")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="H5MD run file(s), a training store, or predict output (extxyz)")
    p.add_argument("--out", required=True, help="image to write (.png, .svg or .pdf)")
    p.add_argument("--reference", help="labelled extxyz that the predictions are compared "
                                       "with (parity plot)")
    p.add_argument("--kind", choices=("auto", "run", "temperature", "parity", "store"),
                   default="auto", help="plot to make (default: from the files)")
    p.add_argument("--dpi", type=float, default=110, help="resolution of PNG output")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``kill``), raised where the process is, as
    Ctrl-C would be: running oracle jobs are stopped, written files stay whole."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except BrokenPipeError:         # output piped into a reader that stopped (| head):
        import os                   # stop quietly, with the status of a SIGPIPE (a run
                                    # cut short is not a success)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return _stop_all_ranks(141)
    except (ConfigError, DataFileError, OracleFailure, OSError, ValueError) as exc:
        print(f"otf-spin: error: {_one_line(exc)}", file=sys.stderr)
        return _stop_all_ranks(EXIT_USAGE)
    except MemoryError as exc:
        print(f"otf-spin: error: out of memory ({_one_line(exc) or 'allocation failed'})",
              file=sys.stderr)
        return _stop_all_ranks(EXIT_USAGE)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        hint = f": {_one_line(exc)}" if exc.args else ""
        print(f"otf-spin: {'terminated (SIGTERM)' if terminated else 'interrupted'}{hint}",
              file=sys.stderr)
        return _stop_all_ranks(143 if terminated else 130)
    except Exception:
        if _mpi_size() > 1:          # a rank that dies alone would leave the others waiting
            import traceback

            traceback.print_exc()
            return _stop_all_ranks(1)
        raise


def _read_data(path) -> list:
    """The frames of ``--data``: an extxyz file or a training store (an on-the-fly run's
    or ``otf-spin generate``'s); any other HDF5 file is refused in one line."""
    kind = file_kind(path)
    if kind == "training store":
        return TrainingStore(path).frames()
    if kind in ("checkpoint", "model", "trajectory", "HDF5 file"):
        raise DataFileError(f"{path}: {KIND_NAMES[kind]}, not labelled frames: --data takes "
                            "an extxyz file or a training store")
    return read_frames(path)


def _check_output(path, kind: str, *inputs) -> None:
    """Before computing: ``path`` (--out) can be written: not an input (``inputs``: (option,
    path or None) pairs), absent or a file of ``kind`` (:func:`otf_spin.io.atomic.file_kind`;
    ValueError naming the option otherwise), not a folder, its folder exists or can be made
    and is writable (OSError naming the path)."""
    import errno
    import os

    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", path)
    check_outputs([("--out", path, kind)] + [(option, p, None) for option, p in inputs])
    path = os.path.abspath(path)
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
    try:
        return world().size
    except RuntimeError:
        return 1


def _stop_all_ranks(code: int) -> int:
    """Under MPI with several ranks, abort them all (an error seen by one rank must not
    leave the others waiting in a collective); else return ``code``."""
    if _mpi_size() > 1:
        sys.stderr.flush()
        world().Abort(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
