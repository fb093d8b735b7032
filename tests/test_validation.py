"""Every number that enters is checked: YAML, extxyz and model files, run settings.

Each refusal is one line naming the file and the key, frame, atom, line or dataset, exit
status 2, before anything is computed, and no output is written.
"""
import re

import h5py
import numpy as np
import pytest

from otf_spin.config.engine import Key, Section, load_yaml
from otf_spin.core import (ConfigError, DataFileError, Frame, InvalidSystemError, MemoryLimitError)
from otf_spin.factory import load_run
from otf_spin.io.extxyz import write_frames
from otf_spin.system import SpinSystem, bulk, check_system, random_sphere, require_memory
from otf_spin.units import FS, GAMMA, MU_B
from test_fuzz import RUN, base, call  # noqa: F401  (base is a fixture)

NUMBERS = Section({"x": Key("float", "a number", 1.0),
                   "n": Key("int", "a count", 1),
                   "q": Key("quantity", "a time", 1.0, unit="fs", dimension="time")})


def _one_line_error(rc, err, *fragments):
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("otf-spin: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# --- YAML numbers ----------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [("1e-3", 1e-3), ("1E5", 1e5), ("-.5", -0.5),
                                         ("+2e2", 200.0), ("1.0e-3", 1e-3), ("3", 3.0)])
def test_yaml_12_floats_are_numbers(tmp_path, text, value):
    path = tmp_path / "n.yaml"
    path.write_text(f"x: {text}\n")
    assert NUMBERS.validate(load_yaml(path))["x"] == pytest.approx(value)
    assert load_yaml(path)["x"] == pytest.approx(value)


@pytest.mark.parametrize("key, text, message", [
    ("x", ".nan", "x: nan is not a finite number"),
    ("x", "-.inf", "x: -inf is not a finite number"),
    ("x", "1.0e400", "x: inf is not a finite number"),
    ("x", "1e300", "x: 1e+300 is out of range (magnitude at most 1e+12)"),
    ("n", "100000000000000000000000000000", "n: 100000000000000000000000000000 is out of"),
    ("n", ".nan", "n: expected an integer, got nan"),
    ("q", "1e400 fs", "q: inf is not a finite number"),
    ("q", "100000000000000000000000000000000000000000000", "q: 1000"),
    ("q", ".inf", "q: inf is not a finite number"),
])
def test_non_finite_and_huge_numbers_are_refused(key, text, message, tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text(f"{key}: {text}\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")):
        NUMBERS.validate(load_yaml(path))


def test_yaml_invalid_utf8_and_empty_strings_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"x: 1\ny: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line 2: not UTF-8 text \(byte 0xff\)"):
        load_yaml(path)
    schema = Section({"store": Key("str", "training store", "s.h5")})
    with pytest.raises(ConfigError, match="store: empty string"):
        schema.validate({"store": ""})
    # strictness kept: duplicate keys are still errors with the YAML 1.2 resolver
    path.write_text("x: 1e-3\nx: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'x'"):
        load_yaml(path)


# --- run files --------------------------------------------------------------------------
@pytest.mark.parametrize("old, new, message", [
    ("timestep: 0.1", "timestep: .nan", "dynamics.timestep: nan is not a finite number"),
    ("timestep: 0.1", "timestep: 1.0e400", "dynamics.timestep: inf is not a finite number"),
    ("timestep: 0.1", "timestep: 0", "dynamics.timestep: 0 is below the minimum"),
    ("temperature: [10, 20]", "temperature: .inf", "dynamics.temperature: inf is not"),
    ("temperature: [10, 20]", "temperature: [10, -1]", "dynamics.temperature: [10, -1] is "
                                                       "below the minimum 0 K"),
    ("temperature: [10, 20]", "temperature: 1e7", "dynamics.temperature: 10000000.0 is above "
                                                  "the maximum 100000 K"),
    ("moment: 2.2", "moment: .nan", "system.moment: nan is not a finite number"),
    ("moment: 2.2", "moment: 0", "system.moment: 0 is below the minimum"),
    ("moment: 2.2", "moment: 1e200", "system.moment: 1e+200 is out of range"),
    ("steps: 4", "steps: 100000000000000000000000000000", "dynamics.steps: 1000"),
    ("steps: 4", "steps: 2000000000", "dynamics.steps: 2000000000 is above the maximum 1e+09"),
    ("repeat: [1, 1, 2]", "repeat: [100000, 100000, 100000]",
     "system.repeat: [100000, 100000, 100000]: 2e+15 atoms needs about"),
    ("a: 2.83", "a: 0.3", "system (bcc, a = 0.3 Å): periodic cell is 0.212 Å wide along a1, "
                          "below the minimum distance between atoms 0.5 Å"),
    ("spins: random", "spins: cone\n  axis: [0, 0, 0]", "system.axis: the zero vector"),
    ("trajectory: run.h5", 'trajectory: ""', "output.trajectory: empty string"),
    ("trajectory: run.h5", "trajectory: run.xyz",
     "output.trajectory: 'run.xyz' would be written as HDF5: give it an HDF5 ending"),
    ("field: [0.0, 0.0, 1.5]", "field: [0.0, 0.0, 1e5]", "dynamics.field[2]: 100000.0 is "
                                                         "above the maximum 10000 T"),
    ("field: [0.0, 0.0, 1.5]", "field: [0.0, 0.0, 9000]\n  timestep: 1",
     "dynamics.timestep: 1 fs turns a spin by 1.58 rad per step in fields up to 9000 T; the "
     "bound γ·|B|·Δt ≤ 1 rad needs Δt ≤ 0.631 fs"),
])
def test_run_file_numbers(tmp_path, old, new, message):
    assert old in RUN
    path = tmp_path / "run.yaml"
    text = RUN.replace(old, new)
    if "timestep: 1" in new:                    # the external field alone limits the step
        text = text.replace("  timestep: 0.1        # fs\n", "")
    path.write_text(text)
    rc, err, escaped = call(["validate", str(path)])
    assert escaped is None
    _one_line_error(rc, err, f"{path}: {message}")


def test_damping_1e_minus_3_is_a_number(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(RUN.replace("damping: 0.1", "damping: 1e-3"))
    assert load_run(path)["dynamics"]["damping"] == 1e-3


def test_timestep_bound_uses_the_hamiltonian_fields(tmp_path, monkeypatch):
    """γ·max|B|·Δt ≤ 1 rad with the exact Heisenberg bound Σ_j|J_ij|·2/(μ_i μB) + |B_ext|;
    the run refuses a larger step before the first step and writes nothing."""
    from otf_spin.runner import build_provider, build_system

    path = tmp_path / "run.yaml"
    path.write_text(RUN)
    cfg = load_run(path)
    system = build_system(cfg["system"], 1)
    provider = build_provider(cfg["hamiltonian"], system, cfg["dynamics"]["field"])
    bound = provider.field_bound()
    # ferromagnetic spins and ferromagnetic couplings reach the bound exactly
    fm = np.tile([0.0, 0.0, 1.0], (len(system), 1))
    B = np.empty_like(fm)
    provider.field(fm, B)
    assert np.linalg.norm(B, axis=1).max() == pytest.approx(bound, rel=1e-12)
    J_sum = 2 * (8 * 19.48e-3 + 6 * 11.09e-3) / (2.2 * MU_B)     # Pajda's two shells, T
    assert bound == pytest.approx(J_sum + 1.5, rel=1e-4)
    for seed in range(5):                    # and bound it for any spins
        provider.field(random_sphere(len(system), np.random.default_rng(seed)), B)
        assert np.linalg.norm(B, axis=1).max() <= bound * (1 + 1e-12)
    dt_max = 1.0 / (GAMMA * bound)
    too_long = tmp_path / "long.yaml"
    too_long.write_text(RUN.replace("timestep: 0.1", f"timestep: {1.02 * dt_max / FS:.6f}"))
    monkeypatch.chdir(tmp_path)
    rc, err, escaped = call(["run", str(too_long), "--quiet"])
    assert escaped is None
    _one_line_error(rc, err, f"{too_long}: dynamics.timestep:", "rad per step",
                    f"needs Δt ≤ {dt_max / FS:.4g} fs")
    assert not (tmp_path / "run.h5").exists()
    fine = tmp_path / "fine.yaml"
    fine.write_text(RUN.replace("timestep: 0.1", f"timestep: {0.98 * dt_max / FS:.6f}"))
    rc, err, escaped = call(["run", str(fine), "--quiet"])
    assert (rc, escaped) == (0, None), err


# --- structures --------------------------------------------------------------------------
def test_check_system_messages():
    system = bulk("bcc", 2.83, (1, 1, 1))
    check_system(system)
    cases = []
    s = system.copy()
    s.positions[1] = s.positions[0] + [0.3, 0, 0]
    cases.append((s, "atoms 0 and 1 are 0.3 Å apart, closer than the minimum distance 0.5"))
    s = system.copy()
    s.positions[1, 2] = np.nan
    cases.append((s, "atom 1: position is not finite"))
    s = system.copy()
    s.positions[0, 0] = 1e300
    cases.append((s, "atom 0: position [1e+300, 0.0, 0.0] Å lies beyond ±100000 Å"))
    s = system.copy()
    s.magnitudes[1] = 0.0
    cases.append((s, "atom 1: moment [0.0, 0.0, 0.0] μB (magnitude must lie in (0, 100]"))
    s = system.copy()
    s.cell[2] = s.cell[0]
    cases.append((s, "periodic cell has no volume"))
    cases.append((SpinSystem(np.zeros((3, 3)), np.zeros((0, 3)), "Fe"), "no atoms"))
    for s, message in cases:
        with pytest.raises(InvalidSystemError) as info:
            check_system(s, "here")
        assert str(info.value).startswith("here: ") and message in str(info.value)
    # periodic images count: a 1-atom sc cell of 0.4 Å is too narrow
    with pytest.raises(InvalidSystemError, match="0.4 Å wide along a1"):
        check_system(bulk("sc", 0.4, primitive=True))


def test_memory_is_checked_before_allocating():
    with pytest.raises(MemoryLimitError, match=r"needs about .* of memory, .* available"):
        require_memory(2.0**70, "a test")
    with pytest.raises(MemoryLimitError, match=r"repeated \[100000, 100000, 100000\] "
                                               r"\(2e\+15 atoms\)"):
        bulk("bcc", 2.83, (100000, 100000, 100000))


# --- data files through label, train and predict --------------------------------------------
def _rows(base_path):
    return open(base_path).read().splitlines()


def _set(lines, row, column, value):
    cols = lines[row].split()
    cols[column] = value
    return lines[:row] + [" ".join(cols)] + lines[row + 1:]


DATA_CASES = {   # name -> (edit of the 3-frame, 2-atom data file lines, expected message)
    "NaN magmom": (lambda L: _set(L, 2, 4, "nan"),
                   "frame 0: atom 0: 'magmoms' is not finite"),
    "NaN position": (lambda L: _set(L, 3, 2, "nan"),
                     "frame 0: atom 1: position is not finite"),
    "overlapping atoms": (lambda L: _set(_set(_set(L, 3, 1, "0.1"), 3, 2, "0"), 3, 3, "0"),
                          "frame 0: atoms 0 and 1 are 0.1 Å apart, closer than the minimum "
                          "distance 0.5 Å"),
    "coordinate 1e300": (lambda L: _set(L, 7, 1, "1e300"),
                         "frame 1: atom 1: position [1e+300"),
    "magmom 1e200": (lambda L: _set(L, 10, 5, "1e200"),
                     "frame 2: atom 0: 'magmoms' ["),
    "infinite field": (lambda L: _set(L, 2, 8, "inf"), "frame 0: atom 0: 'fields' is not"),
    "NaN energy": (lambda L: [L[0], L[1].replace("energy=", "energy=nan x=")] + L[2:],
                   "frame 0: 'energy' is not finite"),
    "0-atom frame": (lambda L: L[:4] + ["0", L[5]] + L[8:], "frame 1: no atoms"),
    "empty file": (lambda L: [], "no frames (empty file)"),
    "extra column": (lambda L: L[:7] + [L[7] + " 1.0"] + L[8:],
                     "line 8: frame 1, atom 1: 14 columns, the header declares 13"),
    "text in a number": (lambda L: _set(L, 11, 2, "x"),
                         "line 12: frame 2, atom 1: column 3 (pos1): cannot read 'x'"),
}


@pytest.mark.parametrize("command", ["label", "train", "predict"])
@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_is_refused_before_computing(base, tmp_path, case, command):  # noqa: F811
    edit, message = DATA_CASES[case]
    lines = edit(_rows(base["data"]))
    data = tmp_path / "bad.xyz"
    data.write_text("\n".join(lines) + ("\n" if lines else ""))
    out = tmp_path / ("out.h5" if command == "train" else "out.xyz")
    argv = {"label": ["label", "--oracle", str(base["oracle"]), "--data", str(data)],
            "train": ["train", "--config", str(base["model_yaml"]), "--data", str(data)],
            "predict": ["predict", "--model", str(base["model"]), "--data", str(data)]}[command]
    rc, err, escaped = call(argv + ["--out", str(out)])
    assert escaped is None, escaped
    _one_line_error(rc, err, f"{data}: {message}")
    assert not out.exists()


def test_nan_output_is_never_written(tmp_path, fe16):
    path = tmp_path / "o.xyz"
    with pytest.raises(DataFileError, match=r"o.xyz: frame 1 \(not written\): atom 3: "
                                            r"'fields' is not finite"):
        fields = np.zeros((16, 3))
        fields[3, 1] = np.nan
        write_frames(path, [Frame(fe16, {"energy": 0.1}), Frame(fe16, {"fields": fields})])
    assert not path.exists()


# --- model files --------------------------------------------------------------------------
def _datasets(path):
    names = []
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda n, node: names.append(n) if isinstance(node, h5py.Dataset)
                      else None)
    return names


def test_an_output_never_replaces_an_input_or_a_file_of_another_kind(base, tmp_path):  # noqa: F811
    """train, predict and label refuse an --out that is one of their inputs or an existing
    file of another kind (a training store, a model, a YAML file) — one line, exit 2,
    the file untouched — and overwrite their own kind (a model, an extxyz file)."""
    from otf_spin.learning.store import TrainingStore

    store = tmp_path / "store.h5"
    TrainingStore(store).append([Frame(bulk("bcc", 2.83, (1, 1, 1)), {"energy": 0.0})],
                                [{"oracle": "test"}])
    config = tmp_path / "notes.yaml"
    config.write_text("a: 1\n")
    data, model, oracle = str(base["data"]), str(base["model"]), str(base["oracle"])
    train = ["train", "--config", str(base["model_yaml"]), "--data", data]
    predict = ["predict", "--model", model, "--data", data, "--quiet"]
    label = ["label", "--oracle", oracle, "--data", data, "--quiet"]
    cases = [(train + ["--out", data], "--out and --data are the same path"),
             (predict + ["--out", model], "--out and --model are the same path"),
             (label + ["--out", oracle], "--out and --oracle are the same path"),
             (train + ["--out", str(store)], "is a training store, not a model"),
             (predict + ["--out", str(store)], "is a training store, not an extxyz"),
             (label + ["--out", model], "is a model, not an extxyz"),
             (predict + ["--out", str(config)], "is a file, not an extxyz")]
    for argv, fragment in cases:
        victim = argv[-1]
        with open(victim, "rb") as handle:
            before = handle.read()
        rc, err, escaped = call(argv)
        assert escaped is None
        _one_line_error(rc, err, fragment, "refusing to overwrite" if "same" not in fragment
                        else "give each its own")
        with open(victim, "rb") as handle:
            assert handle.read() == before, victim
    empty = tmp_path / "empty.h5"           # an empty file holds nothing to lose
    empty.write_bytes(b"")
    rc, err, _ = call(train + ["--out", str(empty)])
    assert rc == 0 and empty.stat().st_size > 0, err
    again = tmp_path / "again.xyz"
    for _ in range(2):      # their own kind is overwritten
        rc, err, _ = call(predict + ["--out", str(again)])
        assert rc == 0, err
    rc, err, _ = call(train + ["--out", str(tmp_path / "m.h5")])
    rc, err, _ = call(train + ["--out", str(tmp_path / "m.h5")])
    assert rc == 0, err


def test_every_model_dataset_is_required(base, tmp_path):  # noqa: F811
    names = _datasets(base["model"])
    assert {"alpha", "posterior_R", "sparse/0", "training/positions"} <= set(names)
    for name in names:
        path = tmp_path / "m.h5"
        with open(base["model"], "rb") as src:
            path.write_bytes(src.read())
        with h5py.File(path, "a") as h5:
            del h5[name]
        out = tmp_path / "p.xyz"
        rc, err, escaped = call(["predict", "--model", str(path), "--data", str(base["data"]),
                                 "--out", str(out), "--quiet"])
        assert escaped is None, escaped
        _one_line_error(rc, err, f"{path}: dataset '{name}' is missing")
        assert not out.exists()


@pytest.mark.parametrize("name, value, message", [
    ("alpha", np.nan, "dataset 'alpha' contains NaN or infinite values (first at index [0])"),
    ("posterior_R", np.inf, "dataset 'posterior_R' contains NaN or infinite values"),
    ("sparse/0", np.nan, "dataset 'sparse/0' contains NaN"),
    ("training/energy", np.inf, "dataset 'training/energy' contains NaN or infinite"),
])
def test_non_finite_model_weights_are_refused(base, tmp_path, name, value, message):  # noqa: F811
    path = tmp_path / "m.h5"
    with open(base["model"], "rb") as src:
        path.write_bytes(src.read())
    with h5py.File(path, "a") as h5:
        data = h5[name][()]
        data.flat[0] = value
        h5[name][...] = data
    out = tmp_path / "p.xyz"
    rc, err, escaped = call(["predict", "--model", str(path), "--data", str(base["data"]),
                             "--out", str(out), "--quiet"])
    assert escaped is None
    _one_line_error(rc, err, f"{path}: {message}")
    assert not out.exists()


def test_save_refuses_non_finite_weights(base, tmp_path):  # noqa: F811
    from otf_spin.model import load, save

    model = load(base["model"])
    model.alpha = model.alpha.copy()
    model.alpha[0] = np.nan
    with pytest.raises(DataFileError, match="alpha is not finite; not written"):
        save(model, tmp_path / "nan.h5")
    assert not (tmp_path / "nan.h5").exists()


def test_outputs_are_checked_before_computing(base, tmp_path):  # noqa: F811
    folder = tmp_path / "a_folder"
    folder.mkdir()
    for argv in (["predict", "--model", str(base["model"]), "--quiet"],
                 ["train", "--config", str(base["model_yaml"])],
                 ["label", "--oracle", str(base["oracle"]), "--quiet"]):
        rc, err, escaped = call(argv + ["--data", str(base["data"]), "--out", str(folder)])
        assert escaped is None
        _one_line_error(rc, err, f"{folder}: is a folder, not a file")
    unlabelled = tmp_path / "u.xyz"
    write_frames(unlabelled, [Frame(bulk("bcc", 2.83, (1, 1, 1)))])
    rc, err, escaped = call(["train", "--data", str(unlabelled), "--out",
                             str(tmp_path / "m.h5")])
    _one_line_error(rc, err, f"{unlabelled}: no frame carries labels")


def test_model_datasets_are_checked_against_memory(base, tmp_path, monkeypatch):  # noqa: F811
    import otf_spin.system

    monkeypatch.setattr(otf_spin.system, "available_memory", lambda: 10)
    rc, err, escaped = call(["predict", "--model", str(base["model"]), "--data",
                             str(base["data"]), "--out", str(tmp_path / "p.xyz")])
    assert escaped is None
    _one_line_error(rc, err, f"{base['model']}: dataset 'sparse/0'", "of memory, 10 B available")


# --- other inputs: UppASD tables, spin files, command-line numbers --------------------------
@pytest.mark.parametrize("row, message", [
    ("1 1  0.5  0.5  0.5   nan", "line 2: a number is not finite or beyond ±1e+12"),
    ("1 1  0.5  0.5  0.5   1e300", "line 2: a number is not finite or beyond ±1e+12"),
    ("1 1  0.5  0.5  0.5   x", "line 2: not a number"),
])
def test_uppasd_tables_are_checked(tmp_path, row, message):
    from otf_spin.io.uppasd import read_jfile_shells

    path = tmp_path / "jfile"
    path.write_text(f"# header\n{row}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}")):
        read_jfile_shells(path, 2.83)
    path.write_bytes(b"# header\n1 1 0.5 0.5 0.5 \xff\n")
    with pytest.raises(ConfigError, match=f"{path}: line 2: not UTF-8 text"):
        read_jfile_shells(path, 2.83)


def test_spin_files_are_checked(tmp_path):
    from otf_spin.io.extxyz import directions_from_file

    path = tmp_path / "spins.txt"
    np.savetxt(path, [[0, 0, 1], [np.nan, 0, 1]])
    with pytest.raises(InvalidSystemError, match=r"spins.txt: row 2: spin vector \[nan"):
        directions_from_file(path, 2)
    np.savetxt(path, [[0, 0, 1], [0, 0, 0]])
    with pytest.raises(InvalidSystemError, match="row 2: spin vector .* is zero"):
        directions_from_file(path, 2)


@pytest.mark.parametrize("argument, message", [
    (["--scale", "nan"], "--scale: nan is not in (0, 100]"),
    (["--scale", "-1"], "--scale: -1.0 is not in (0, 100]"),
    (["--seed", "-5"], "--seed: -5 is negative"),
])
def test_paper_sets_arguments(tmp_path, argument, message):
    rc, err, escaped = call(["paper-sets", "--out", str(tmp_path / "sets"), "--sets",
                             "random", "--quiet"] + argument)
    assert escaped is None
    _one_line_error(rc, err, message)
    assert not (tmp_path / "sets").exists()


def test_run_time_refusals_name_the_run_file(tmp_path, monkeypatch):
    """Settings the runner refuses (here: a trajectory path holding another kind of file)
    come out as one line starting with the run file."""
    (tmp_path / "notes.h5").write_text("keep me\n")
    path = tmp_path / "run.yaml"
    path.write_text(RUN.replace("trajectory: run.h5", "trajectory: notes.h5"))
    monkeypatch.chdir(tmp_path)
    rc, err, escaped = call(["run", str(path), "--quiet"])
    assert escaped is None
    _one_line_error(rc, err, f"{path}: output.trajectory: notes.h5 is a file, not a trajectory")
    assert (tmp_path / "notes.h5").read_text() == "keep me\n"


@pytest.mark.parametrize("given, command", [
    ("run", ["train", "--data", "{data}", "--out", "{out}", "--config", "{given}"]),
    ("oracle", ["train", "--data", "{data}", "--out", "{out}", "--config", "{given}"]),
    ("model_yaml", ["run", "{given}", "--quiet"]),
    ("oracle", ["run", "{given}", "--quiet"]),
    ("run", ["label", "--oracle", "{given}", "--data", "{data}", "--out", "{out}"]),
    ("model_yaml", ["generate", "{given}", "--quiet"]),
])
def test_a_file_of_another_kind_is_named_as_such(base, tmp_path, given, command):  # noqa: F811
    """A run file given where a model file is expected (``train --config run.yaml``) and
    the like: one line saying what the file is and what is expected, no output."""
    out = tmp_path / "out.h5"
    argv = [arg.format(data=base["data"], out=out, given=base[given]) for arg in command]
    rc, err, escaped = call(argv)
    assert escaped is None
    found = {"run": "a run", "oracle": "an oracle", "model_yaml": "a model"}[given]
    wanted = {"train": "a model", "run": "a run", "label": "an oracle",
              "generate": "a generate"}[command[0]]
    _one_line_error(rc, err, f"{base[given]}: this is {found} file (top-level ")
    assert f"not {wanted} file (otf-spin validate --describe" in err
    assert not out.exists()


def test_train_refuses_energies_not_relative_to_fm(base, tmp_path):  # noqa: F811
    """Total energies (VASP TOTEN-like, -8 eV/atom) or an all-parallel frame with an
    energy: one line naming the file, exit 2, no model (new-user review: 500× worse
    model, exit 0). Energies relative to FM train."""
    from otf_spin.io.extxyz import read_frames

    frames = read_frames(base["data"])
    shifted = [Frame(f.system, dict(f.results, energy=f.energy - 8.1 * len(f.system)))
               for f in frames]
    fm = bulk("bcc", 2.83, (1, 1, 1))
    cases = [(shifted, "energies average 8."),
             (frames + [Frame(fm, {"energy": 0.3})],
              f"frame {len(frames)}: all spins parallel, yet energy 0.15 eV/atom")]
    for k, (data, message) in enumerate(cases):
        path = tmp_path / f"d{k}.xyz"
        write_frames(path, data)
        out = tmp_path / f"m{k}.h5"
        rc, err, escaped = call(["train", "--config", str(base["model_yaml"]), "--data",
                                 str(path), "--out", str(out)])
        assert escaped is None and not out.exists()
        _one_line_error(rc, err, f"{path}: {message}", "relative to the ferromagnetic")
    along_x = fm.copy()     # FM along another axis: its anisotropy energy (3 meV/atom)
    along_x.set_directions(np.tile([1.0, 0.0, 0.0], (len(fm), 1)))
    write_frames(tmp_path / "ok.xyz", frames + [Frame(fm, {"energy": 0.0}),
                                                Frame(along_x, {"energy": 0.006})])
    rc, err, _ = call(["train", "--config", str(base["model_yaml"]), "--data",
                       str(tmp_path / "ok.xyz"), "--out", str(tmp_path / "ok.h5")])
    assert rc == 0, err
