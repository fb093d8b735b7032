"""Fuzzing the inputs: malformed YAML, extxyz, model and oracle files made from valid ones.

Every mutated input goes through the command line (``otf_spin.cli.main`` in-process; a
few through a subprocess) under a time limit. A case passes when nothing escapes as a
traceback and, if the command fails, it exits 2 with one line ``otf-spin: error: ...``
and writes no output. Mutations that always break an input (NaN, inf, huge numbers,
wrong units, invalid UTF-8, random bytes, duplicate keys, extra columns, ...) must fail;
the others (deleting a key, truncating, swapping a type) may yield a valid input, whose
run must then succeed without a non-finite output. Valid edge cases (open clusters,
two-atom frames, the input_examples files) must be accepted.
"""
import contextlib
import io
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

from otf_spin.cli import main
from otf_spin.core import Frame
from otf_spin.io.extxyz import read_frames, write_frames
from otf_spin.system import SpinSystem, bulk, random_cone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "input_examples")
SEED = 20261202
CASE_SECONDS = 20          # time limit of one case (a hang fails the test)

ORACLE = """type: heisenberg
convention: double_counted      # H = -Σ_{i≠j} J e_i·e_j
distance_unit: lattice
lattice_constant: 2.83          # Å
shell_tolerance: 0.05           # Å
shells:                         # [distance / a, J in meV]
  - [0.8660, 19.48]
  - [1.0000, 11.09]
moment: 2.2                     # μB
"""
MODEL = """descriptor:
  r_cut: 3.0           # Å
  n_max: 4
  l_max: 2
  sigma_s: 0.3
  radial_scaling: [2.5, 4]
kernels:
  - {zeta: 1, normalize: false, orders: [1], n_sparse: null, delta: 1.0}
noise: {energy: 0.3, field: 1.0}   # meV, meV/μB
optimise: false
"""
RUN = """system:
  lattice: bcc
  a: 2.83              # Å
  repeat: [1, 1, 2]
  moment: 2.2          # μB
  spins: random
hamiltonian:
  type: heisenberg
  convention: double_counted
  distance_unit: lattice
  shells: [[0.8660, 19.48], [1.0000, 11.09]]
dynamics:
  integrator: depondt
  timestep: 0.1        # fs
  damping: 0.1
  temperature: [10, 20]
  steps: 4
  seed: 3
  field: [0.0, 0.0, 1.5]   # T
output:
  trajectory: run.h5
  every: 2
"""


class CaseTimeout(BaseException):
    """Raised by the alarm when a case runs past CASE_SECONDS (not caught by the CLI)."""


def _alarm(signum, frame):
    raise CaseTimeout()


def call(argv, seconds=CASE_SECONDS):
    """(exit status, stderr, escaped exception text or None) of ``otf-spin argv``."""
    err, escaped = io.StringIO(), None
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code
    except CaseTimeout:
        rc, escaped = None, f"no result within {seconds} s (hang)"
    except Exception as exc:                      # a traceback the user would see
        import traceback

        rc, escaped = None, "".join(traceback.format_exception(exc))[-1500:]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return rc, err.getvalue(), escaped


# --- the valid inputs every mutation starts from ---------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_base")
    files = {"oracle": folder / "oracle.yaml", "model_yaml": folder / "model.yaml",
             "run": folder / "run.yaml", "data": folder / "data.xyz",
             "model": folder / "model.h5"}
    files["oracle"].write_text(ORACLE)
    files["model_yaml"].write_text(MODEL)
    files["run"].write_text(RUN)
    rng = np.random.default_rng(SEED)
    frames = []
    for k in range(3):
        system = bulk("bcc", 2.83, (1, 1, 1))
        system.set_directions(random_cone(2, (0, 0, 1), 0.7, rng))
        frames.append(Frame(system))
    unlabelled = folder / "unlabelled.xyz"
    write_frames(unlabelled, frames)
    for argv in (["label", "--oracle", str(files["oracle"]), "--data", str(unlabelled),
                  "--out", str(files["data"]), "--quiet"],
                 ["train", "--data", str(files["data"]), "--out", str(files["model"]),
                  "--config", str(files["model_yaml"])]):
        rc, err, escaped = call(argv)
        assert rc == 0 and escaped is None, (argv, err, escaped)
    return files


# --- mutations --------------------------------------------------------------------------
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
BAD_NUMBERS = [".nan", ".inf", "-.inf", "1e300", "-1e300", "1.0e400",
               "100000000000000000000000000000"]


def _yaml_numbers(text):
    """Spans of the numbers in YAML values (not in comments or keys)."""
    spans = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.split("#", 1)[0]
        value_start = body.find(":") + 1 if ":" in body else 0
        for m in NUMBER.finditer(body, value_start):
            spans.append((offset + m.start(), offset + m.end()))
        offset += len(line)
    return spans


def _keys(data, prefix=()):
    """Paths of every mapping key in parsed YAML."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(prefix + (k,))
            out += _keys(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _keys(v, prefix + (i,))
    return out


def _get(data, path):
    for k in path:
        data = data[k]
    return data


def _random_text(rng):
    """Printable ASCII noise with line breaks, colons and brackets."""
    alphabet = "abcdefgh0123456789 .:-[]{},#\"'\n\t"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 300))).encode()


def mutate_yaml(text, rng):
    """(mutated bytes, name, must_fail)."""
    data = yaml.safe_load(text)
    kind = rng.choice(["bad_number", "bad_number", "wrong_unit", "duplicate", "delete",
                       "swap_type", "truncate", "random_bytes", "random_text", "invalid_utf8",
                       "negative"])
    spans = _yaml_numbers(text)
    if kind in ("bad_number", "wrong_unit", "negative") and spans:
        a, b = rng.choice(spans)
        new = {"bad_number": rng.choice(BAD_NUMBERS), "wrong_unit": f'"{text[a:b]} parsec"',
               "negative": "-1e-3" if text[a] != "-" else text[a + 1:b]}[kind]
        return (text[:a] + new + text[b:]).encode(), kind, kind != "negative"
    if kind == "duplicate":
        lines = text.splitlines(keepends=True)
        candidates = [i for i, line in enumerate(lines)
                      if re.match(r"^\s*[A-Za-z_]\w*:", line) and not line.lstrip().startswith("-")]
        i = rng.choice(candidates)
        indent = len(lines[i]) - len(lines[i].lstrip())
        j = i + 1                       # after the key's block, at the same indentation
        while j < len(lines) and (not lines[j].strip() or
                                  len(lines[j]) - len(lines[j].lstrip()) > indent):
            j += 1
        lines.insert(j, lines[i].split(":")[0] + ": 1\n")
        return "".join(lines).encode(), kind, True
    if kind in ("delete", "swap_type"):
        path = rng.choice(_keys(data))
        parent = _get(data, path[:-1])
        if kind == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = rng.choice([[1, 2], {"x": 1}, "word", True, None, 7, 0.5])
        return yaml.safe_dump(data, allow_unicode=True).encode(), kind, False
    raw = text.encode()
    if kind == "truncate":
        return raw[:rng.randrange(1, len(raw))], kind, False
    if kind == "random_text":
        return _random_text(rng), kind, True
    if kind == "random_bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))), kind, True
    k = rng.randrange(len(raw))
    return raw[:k] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]) + raw[k:], kind, True


def _frames(lines):
    """(header line index, atom row indices) of every frame of an extxyz text."""
    out, k = [], 0
    while k < len(lines) and lines[k].strip():
        n = int(lines[k])
        out.append((k + 1, list(range(k + 2, k + 2 + n))))
        k += 2 + n
    return out


def mutate_xyz(text, rng):
    """(mutated bytes, name, must_fail) for an extxyz file written by ASE (columns:
    species, pos ×3, magmoms ×3, fields ×3, forces ×3)."""
    lines = text.splitlines()
    header, rows = rng.choice(_frames(lines))
    kind = rng.choice(["bad_number", "bad_number", "bad_energy", "extra_column",
                       "missing_column", "delete_line", "duplicate_row", "zero_atoms",
                       "empty_frame", "word", "overlap", "wrong_unit", "truncate",
                       "random_bytes", "random_text", "invalid_utf8", "empty_file"])
    i = rng.choice(rows)
    cols = lines[i].split()
    if kind == "bad_number":
        cols[rng.randrange(1, len(cols))] = rng.choice(["nan", "inf", "-inf", "1e300",
                                                        "-1e300", "1e200"])
    elif kind == "bad_energy":
        lines[header] = re.sub(r"energy=\S+", "energy=" + rng.choice(["nan", "inf", "1e300"]),
                               lines[header])
    elif kind == "extra_column":
        cols.append("0.5")
    elif kind == "missing_column":
        cols.pop()
    elif kind == "delete_line":
        del lines[rng.randrange(len(lines))]
    elif kind == "duplicate_row":
        lines.insert(i, lines[i])
    elif kind == "zero_atoms":
        lines[header - 1] = "0"
    elif kind == "empty_frame":             # a well-formed frame without atoms
        lines[header - 1] = "0"
        del lines[rows[0]:rows[-1] + 1]
    elif kind == "empty_file":
        lines = []
    elif kind == "word":
        cols[rng.randrange(1, len(cols))] = "abc"
    elif kind == "overlap":                 # another atom of the frame onto this one
        other = rng.choice([r for r in rows if r != i])
        theirs = lines[other].split()
        lines[other] = " ".join(theirs[:1] + cols[1:4] + theirs[4:])
    elif kind == "wrong_unit":              # moments in the wrong unit (×1000)
        for r in rows:
            c = lines[r].split()
            c[4:7] = [str(1000 * float(x)) for x in c[4:7]]
            lines[r] = " ".join(c)
    if kind in ("bad_number", "extra_column", "missing_column", "word"):
        lines[i] = " ".join(cols)
    if kind in ("truncate", "random_bytes", "random_text", "invalid_utf8"):
        raw = text.encode()
        if kind == "truncate":
            return raw[:rng.randrange(1, len(raw) - 1)], kind, False
        if kind == "random_text":
            return _random_text(rng), kind, True
        if kind == "random_bytes":
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))), kind, True
        k = rng.randrange(len(raw))
        return raw[:k] + b"\xff\xfe" + raw[k:], kind, True
    return ("\n".join(lines) + "\n").encode(), kind, True


def _datasets(h5):
    names = []
    h5.visititems(lambda name, node: names.append(name) if isinstance(node, h5py.Dataset)
                  else None)
    return names


def mutate_model(src, dst, rng):
    """Write a mutated copy of the model file ``src`` to ``dst``; (name, must_fail)."""
    kind = rng.choice(["delete_dataset", "delete_attribute", "nan", "inf", "huge",
                       "reshape", "string", "settings", "truncate", "random_bytes"])
    raw = open(src, "rb").read()
    if kind == "truncate":
        open(dst, "wb").write(raw[:rng.randrange(1, len(raw) - 1)])
        return kind, True
    if kind == "random_bytes":
        open(dst, "wb").write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))))
        return kind, True
    shutil.copy(src, dst)
    must_fail = True
    with h5py.File(dst, "a") as h5:
        names = _datasets(h5)
        floats = [n for n in names if h5[n].dtype.kind == "f" and h5[n].size]
        if kind == "delete_dataset":
            del h5[rng.choice(names)]
        elif kind == "delete_attribute":
            del h5.attrs[rng.choice(["format", "format_version", "settings", "hyper"])]
        elif kind in ("nan", "inf", "huge"):
            name = rng.choice(floats)
            data = h5[name][()]
            data.flat[rng.randrange(data.size)] = {"nan": np.nan, "inf": np.inf,
                                                   "huge": 1e300}[kind]
            h5[name][...] = data
            # NaN marks "no label" in the training energies and fields; huge weights
            # may still predict finite values
            must_fail = not (kind == "huge" or (kind == "nan" and name in (
                "training/energy", "training/fields")))
        elif kind == "reshape":
            name = rng.choice([n for n in names if h5[n].shape and h5[n].shape[0] > 1])
            data = h5[name][()]
            del h5[name]
            h5.create_dataset(name, data=data[:-1])
        elif kind == "string":
            name = rng.choice(names)
            del h5[name]
            h5.create_dataset(name, data=np.array([b"abc", b"def"]))
        else:
            h5.attrs["settings"] = rng.choice(["{not json", "[1, 2]", '{"descriptor": 3}',
                                               "null"])
    return kind, must_fail


# --- the fuzz test ------------------------------------------------------------------------
def _check(case, rc, err, escaped, out, must_fail, problems):
    where = f"{case}: rc={rc} stderr={err.strip()[:300]!r}"
    if escaped:
        problems.append(f"{case}: escaped: {escaped}")
        return "escaped"
    if "Traceback" in err:
        problems.append(f"{where}: traceback")
    if rc == 0:
        if must_fail:
            problems.append(f"{where}: accepted an input that must be refused")
        elif out and os.path.exists(out) and out.endswith(".xyz"):
            read_frames(out)                    # finite, bounded: the reader checks
        return "accepted"
    lines = err.strip().splitlines()
    if rc != 2 or len(lines) != 1 or not lines[0].startswith("otf-spin: error: "):
        problems.append(f"{where}: not one error line with exit 2")
    if out and os.path.exists(out):
        problems.append(f"{where}: wrote {out} although it failed")
    return "rejected"


def test_fuzz_inputs(base, tmp_path):
    rng = random.Random(SEED)
    cwd = os.getcwd()
    os.chdir(tmp_path)          # run files write relative to the working directory
    counts = {"accepted": 0, "rejected": 0, "escaped": 0}
    must, problems, start = 0, [], time.perf_counter()
    bases = {"oracle": base["oracle"].read_text(), "run": base["run"].read_text(),
             "model_yaml": base["model_yaml"].read_text(),
             "data": base["data"].read_text(),
             "shells": open(os.path.join(EXAMPLES, "oracle_bccFe_shells.yaml")).read(),
             "eq43": open(os.path.join(EXAMPLES, "oracle_paper_eq43.yaml")).read(),
             "llg": open(os.path.join(EXAMPLES, "bccFe_llg_heisenberg.yaml")).read(),
             "otf": open(os.path.join(EXAMPLES, "bccFe_otf_heisenberg.yaml")).read(),
             "ensemble": open(os.path.join(EXAMPLES, "bccFe_ensemble_otf.yaml")).read(),
             "generate": open(os.path.join(EXAMPLES, "bccFe_generate.yaml")).read()}
    plan = ([("oracle", "validate")] * 40 + [("oracle", "label")] * 20
            + [("shells", "validate")] * 15 + [("eq43", "validate")] * 15
            + [("run", "validate")] * 30 + [("run", "run")] * 10
            + [("llg", "validate")] * 15 + [("otf", "validate")] * 15
            + [("model_yaml", "validate")] * 20 + [("model_yaml", "train")] * 8
            + [("data", "label")] * 40 + [("data", "predict")] * 20 + [("data", "train")] * 12
            + [("model", "predict")] * 50 + [("run", "validate")] * 20
            + [("ensemble", "validate")] * 10 + [("generate", "validate")] * 10)
    for n, (source, command) in enumerate(plan):
        case_dir = tmp_path / f"case{n:03d}"
        case_dir.mkdir()
        os.chdir(case_dir)
        out = None
        if source == "model":
            path = str(case_dir / "model.h5")
            kind, must_fail = mutate_model(base["model"], path, rng)
        else:
            mutator = mutate_xyz if source == "data" else mutate_yaml
            content, kind, must_fail = mutator(bases[source], rng)
            path = str(case_dir / ("input.xyz" if source == "data" else "input.yaml"))
            open(path, "wb").write(content)
        if command == "validate":
            argv = ["validate", path]
        elif command == "run":
            argv = ["run", path, "--quiet"]
            out = str(case_dir / "run.h5")
            if not must_fail:
                continue        # a valid mutated run may be long; only refusals are run
        elif command == "label":
            oracle, data = (path, str(base["data"])) if source == "oracle" else \
                (str(base["oracle"]), path)
            out = str(case_dir / "out.xyz")
            argv = ["label", "--oracle", oracle, "--data", data, "--out", out, "--quiet"]
        elif command == "train":
            config, data = (path, str(base["data"])) if source == "model_yaml" else \
                (str(base["model_yaml"]), path)
            out = str(case_dir / "out.h5")
            argv = ["train", "--data", data, "--out", out, "--config", config]
        else:
            model, data = (path, str(base["data"])) if source == "model" else \
                (str(base["model"]), path)
            out = str(case_dir / "out.xyz")
            argv = ["predict", "--model", model, "--data", data, "--out", out, "--quiet"]
        rc, err, escaped = call(argv)
        must += must_fail
        counts[_check(f"case {n} {source}/{command}/{kind} ({path})", rc, err, escaped, out,
                      must_fail, problems)] += 1
    os.chdir(cwd)
    total = sum(counts.values())
    print(f"\nfuzz: {total} cases, {counts['rejected']} rejected cleanly, "
          f"{counts['accepted']} accepted (valid after mutation), {must} had to be refused, "
          f"{len(problems)} problems, {time.perf_counter() - start:.1f} s")
    assert total >= 300
    assert not problems, "\n".join(problems[:15])


def _without_kernel_warning(stderr):
    """stderr without the import-time warning (and its source line) that a compiled kernel
    is missing, which a machine without a C compiler prints on every command."""
    return re.sub(r".*RuntimeWarning: otf-spin: compiled kernel.*\n(\s+.*\n)?", "", stderr)


SUBPROCESS_CASES = [
    ("validate", "timestep: 0.1", "timestep: .nan", "dynamics.timestep: nan is not a finite"),
    ("validate", "repeat: [1, 1, 2]", "repeat: [100000, 100000, 100000]", "memory"),
    ("validate", "steps: 4", "steps: 100000000000000000000000000000", "dynamics.steps"),
    ("run", "a: 2.83", "a: 0.3", "closer than|minimum distance"),
]


@pytest.mark.parametrize("command, old, new, message", SUBPROCESS_CASES)
def test_fuzz_subprocess(base, tmp_path, command, old, new, message):
    """Real processes: exit status 2, one stderr line, no traceback, no output."""
    path = tmp_path / "run.yaml"
    path.write_text(RUN.replace(old, new))
    proc = subprocess.run([sys.executable, "-m", "otf_spin", command, str(path)]
                          + (["--quiet"] if command == "run" else []),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = [line for line in _without_kernel_warning(proc.stderr).splitlines() if line]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"otf-spin: error: {path}: "), proc.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "run.h5").exists()


# --- valid edge cases stay valid -------------------------------------------------------
def _open_cluster():
    """Three atoms, no cell, no periodicity."""
    return SpinSystem(np.zeros((3, 3)), [[0, 0, 0], [2.45, 0, 0], [0, 2.83, 0.0]], "Fe",
                      directions=[[0, 0, 1], [0, 0.6, 0.8], [0.6, 0, 0.8]], magnitudes=2.2,
                      pbc=False)


def _slab():
    """Periodic in a1, a2 only; 20 Å along the open a3."""
    system = bulk("bcc", 2.83, (1, 1, 1))
    cell = system.cell.copy()
    cell[2] = [0.0, 0.0, 20.0]
    return SpinSystem(cell, system.positions, "Fe", directions=[[0, 0, 1], [0.6, 0, 0.8]],
                      magnitudes=[2.2, 1.9], pbc=(True, True, False))


EDGE_CASES = {
    "open cluster": lambda: [Frame(_open_cluster())],
    "slab (pbc T T F)": lambda: [Frame(_slab())],
    "two-atom bcc frames": lambda: [Frame(bulk("bcc", 2.83, (1, 1, 1)))],
    "one atom, primitive cell": lambda: [Frame(bulk("bcc", 2.83, primitive=True))],
    "atoms exactly 0.5 Å apart": lambda: [Frame(SpinSystem(
        np.zeros((3, 3)), [[0, 0, 0], [0.5, 0, 0]], "Fe", pbc=False))],
    "energy-only and fields-only labels": lambda: [
        Frame(bulk("bcc", 2.83, (1, 1, 1)), {"energy": 0.01}),
        Frame(bulk("bcc", 2.83, (1, 1, 1)), {"fields": np.full((2, 3), 1e-3)})],
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_valid_edge_cases_are_accepted(base, tmp_path, name):
    """label (where the example's shells meet pairs), predict and train accept them."""
    data = tmp_path / "edge.xyz"
    write_frames(data, EDGE_CASES[name]())
    labelled = tmp_path / "l.xyz"
    commands = [["predict", "--model", str(base["model"]), "--data", str(data),
                 "--out", str(tmp_path / "p.xyz"), "--quiet"]]
    if "0.5 Å" not in name:             # no pair on the example's shells: no labels
        commands.insert(0, ["label", "--oracle", os.path.join(EXAMPLES,
                                                              "oracle_bccFe_shells.yaml"),
                            "--data", str(data), "--out", str(labelled), "--quiet"])
        commands.append(["train", "--data", str(labelled), "--out", str(tmp_path / "m.h5"),
                         "--config", str(base["model_yaml"])])
    for argv in commands:
        rc, err, escaped = call(argv)
        assert (rc, escaped) == (0, None), (argv, err, escaped)
    frames = read_frames(tmp_path / "p.xyz")
    assert all(np.isfinite(f.energy) and np.isfinite(f.fields).all() for f in frames)


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(EXAMPLES)
                                        if f.endswith(".yaml")))
def test_examples_stay_valid(name):
    rc, err, escaped = call(["validate", os.path.join(EXAMPLES, name)])
    assert (rc, escaped) == (0, None), err
