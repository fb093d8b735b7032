"""`otf-spin run`: H5MD output, spin temperature = bath temperature, YAML errors, LLG vs MC."""
import os

import h5py
import numpy as np
import pytest
import yaml

from otf_spin.cli import main
from otf_spin.factory import load_run
from otf_spin.runner import run

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "input_examples", "bccFe_llg_heisenberg.yaml")


def write_run(tmp_path, **changes):
    data = yaml.safe_load(open(EXAMPLE))
    for section, values in changes.items():
        data[section].update(values)
    data["output"]["trajectory"] = str(tmp_path / "traj.h5")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_plain_rerun_says_it_replaces_the_earlier_trajectory(tmp_path, capsys):
    """A plain run starts over (no checkpoint): its log says which earlier trajectory it
    replaces (new-user review: a killed 135 MB trajectory went without a word)."""
    path = write_run(tmp_path, system={"repeat": [2, 2, 2]}, dynamics={"steps": 10},
                     output={"every": 5})
    assert main(["run", str(path), "--quiet"]) == 0
    assert "replacing" not in capsys.readouterr().out
    assert main(["run", str(path), "--quiet"]) == 0
    assert f"# replacing the earlier trajectory {tmp_path / 'traj.h5'}" in \
        capsys.readouterr().out


@pytest.mark.parametrize("integrator", ["depondt", "sib", "heun", "mc"])
def test_run_writes_h5md(tmp_path, integrator, capsys):
    path = write_run(tmp_path, system={"repeat": [3, 3, 3]},
                     dynamics={"integrator": integrator, "steps": 40, "temperature": [100, 300]},
                     output={"every": 10})
    assert main(["run", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "spin-updates/s" in out
    header = next(line for line in out.splitlines() if "E/eV" in line).split()
    assert header[2] == ("sweeps" if integrator == "mc" else "time/ps")   # the log's time
    with h5py.File(tmp_path / "traj.h5") as f:
        assert tuple(f["h5md"].attrs["version"]) == (1, 1)
        assert f["particles/all/spin/value"].shape == (5, 54, 3)
        np.testing.assert_allclose(np.linalg.norm(f["particles/all/spin/value"][-1], axis=1), 1)
        for name, unit in (("energy", "eV"), ("magnetization", "1"),
                           ("spin_temperature", "K")):
            assert f[f"observables/{name}/value"].attrs["unit"] == unit
            assert list(f[f"observables/{name}/step"]) == [0, 10, 20, 30, 40]
        assert f["observables/magnetization/value"].shape == (5, 3)
        assert f["observables/temperature/value"][-1] == pytest.approx(300.0)
        time_unit = f["observables/energy/time"].attrs["unit"]
        assert time_unit == ("MC sweep" if integrator == "mc" else "ps")
        if integrator != "mc":
            assert f["observables/energy/time"][-1] == pytest.approx(40 * 1e-4)


def test_same_seed_same_trajectory(tmp_path):
    path = write_run(tmp_path, system={"repeat": [2, 2, 2]}, dynamics={"steps": 30})
    a = run(load_run(path), progress=False, log=open(os.devnull, "w"))["state"].directions
    b = run(load_run(path), progress=False, log=open(os.devnull, "w"))["state"].directions
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("integrator", ["depondt", "sib"])
def test_spin_temperature_equals_bath_temperature(tmp_path, integrator):
    """Fluctuation-dissipation: with the thermal field of the right strength the spin
    temperature (Nurdin et al. 2000) equals the bath temperature."""
    path = write_run(tmp_path, system={"repeat": [6, 6, 6]},
                     dynamics={"integrator": integrator, "steps": 3000, "damping": 0.2,
                               "temperature": 500, "timestep": 0.1},
                     output={"every": 20, "spins": False})
    run(load_run(path), progress=False, log=open(os.devnull, "w"))
    with h5py.File(tmp_path / "traj.h5") as f:
        ts = f["observables/spin_temperature/value"][50:]        # after 100 fs
    assert np.mean(ts) == pytest.approx(500.0, rel=0.04)


@pytest.mark.parametrize("change, message", [
    ({"dynamics": {"timestep": "0.1 K"}}, "dynamics.timestep: unit 'K' is a temperature"),
    ({"dynamics": {"integrator": "verlet"}}, "dynamics.integrator: 'verlet' is not one of"),
    ({"dynamics": {"temperature": [1, 2, 3]}}, "dynamics.temperature: expected a value or"),
    ({"system": {"repeat": [2, 2]}}, "system.repeat: expected 3 entries"),
    ({"system": {"spins": "file"}}, "system.spins_file: required"),
    ({"system": {"spins_file": EXAMPLE}},     # not silently ferromagnetic
     "system.spins_file: read only with spins: file (spins is 'ferromagnetic' here)"),
    ({"output": {"evry": 3}}, "output.evry: unknown key"),
    ({"hamiltonian": {"convention": "both"}}, "hamiltonian.convention: 'both' is not one of"),
])
def test_run_file_errors(tmp_path, capsys, change, message):
    path = write_run(tmp_path, **change)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_example_validates(capsys):
    assert main(["validate", EXAMPLE]) == 0


@pytest.mark.slow
def test_llg_and_mc_give_the_same_magnetisation(tmp_path):
    """Equilibrium M(T) of bcc Fe (J1+J2) from LLG and from Metropolis MC agree."""
    results = {}
    for integrator, steps in (("depondt", 20000), ("mc", 6000)):
        path = write_run(tmp_path, system={"repeat": [8, 8, 8]},
                         dynamics={"integrator": integrator, "steps": steps,
                                   "temperature": 800, "damping": 0.5, "timestep": 0.2},
                         output={"every": 20, "spins": False})
        run(load_run(path), progress=False, log=open(os.devnull, "w"))
        with h5py.File(tmp_path / "traj.h5") as f:
            m = np.linalg.norm(f["observables/magnetization/value"][len(
                f["observables/magnetization/value"]) // 3:], axis=1)
        results[integrator] = m.mean()
    assert results["depondt"] == pytest.approx(results["mc"], abs=0.02)


def test_run_on_a_fitted_model_llg_and_mc(tmp_path):
    import warnings

    from otf_spin.learning.paper_sets import generate_set
    from otf_spin.model import build_model, save

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save(build_model().fit(generate_set("thermal_300K", 1)[0][:8]), tmp_path / "m.h5")
    for integrator in ("sib", "mc"):
        path = write_run(tmp_path, system={"repeat": [2, 2, 2]},
                         dynamics={"integrator": integrator, "steps": 6, "temperature": 300},
                         output={"every": 3})
        data = yaml.safe_load(open(path))
        data["hamiltonian"] = {"type": "model", "file": "m.h5"}
        path.write_text(yaml.safe_dump(data))
        result = run(load_run(path), progress=False, log=open(os.devnull, "w"))
        assert result["final"]["magnetization"][2] > 0.5
        with h5py.File(tmp_path / "traj.h5") as f:
            assert np.isfinite(f["observables/energy/value"][()]).all()
