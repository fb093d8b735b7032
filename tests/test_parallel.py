"""Replicas, parallel tempering and the shared on-the-fly learner on one rank (the same
code paths run under mpirun in tests/mpi/)."""
import os
import re

import h5py
import numpy as np
import pytest
import yaml

from otf_spin.core import ConfigError
from otf_spin.factory import load_run
from otf_spin.parallel.tempering import Tempering
from otf_spin.units import K_B, MU_B
from helpers import run_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENSEMBLE = os.path.join(ROOT, "input_examples", "bccFe_ensemble_otf.yaml")
MOMENT, FIELD = 2.2, 50.0                       # μB, T: free spins in a field


def write(folder, data, name="run.yaml"):
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    return path


def heisenberg_run(**changes):
    data = {"system": {"lattice": "bcc", "a": 2.83, "repeat": [2, 2, 2], "moment": MOMENT},
            "hamiltonian": {"type": "heisenberg", "convention": "double_counted",
                            "distance_unit": "lattice",
                            "shells": [[0.866, 19.48], [1.0, 11.09]]},
            "dynamics": {"integrator": "sib", "timestep": 0.5, "damping": 0.1,
                         "steps": 60, "seed": 3},
            "output": {"trajectory": "run.h5", "every": 10}}
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    return data


def spins(path):
    with h5py.File(path, "r") as h5:
        return h5["particles/all/spin/value"][()]


def exact_cos(x, rng, size):
    """Exact samples of cos θ with density ∝ exp(x cos θ) on the sphere (inverse CDF)."""
    u = rng.random(size)
    return 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * x)) / x


def test_each_replica_is_the_single_run_of_its_seed_and_temperature(tmp_path):
    """Without swaps, replica r of an ensemble is the plain run at T_r with seed_r, bit
    for bit: own stream, nothing shared."""
    ensemble = write(tmp_path, heisenberg_run(replicas={"temperatures": [100, 600],
                                                        "seeds": [5, 9]}))
    run_in(tmp_path, ensemble)
    for r, (T, seed) in enumerate([(100, 5), (600, 9)]):
        folder = tmp_path / f"single{r}"
        folder.mkdir()
        single = write(folder, heisenberg_run(dynamics={"temperature": T, "seed": seed}))
        run_in(folder, single)
        np.testing.assert_array_equal(spins(tmp_path / f"run.r{r:03d}.h5"),
                                      spins(folder / "run.h5"))


def test_swap_rule_keeps_the_product_of_boltzmann_distributions():
    """Detailed balance of the swap move itself: configurations drawn exactly from
    Π_i exp(-β_i E)/Z_i (free spins in a field, E = -μB Σ cos θ) stay so distributed after a
    swap round, and the acceptance equals E[min(1, exp(Δβ ΔE))]. A wrong sign of the
    exponent shifts the slot energies by many standard errors."""
    temperatures = np.array([60.0, 120.0, 240.0])
    n_spins, samples = 4, 40000
    a = MOMENT * MU_B * FIELD                               # eV
    x = a / (K_B * temperatures)
    rng = np.random.default_rng(7)
    energies = np.stack([-a * exact_cos(xi, rng, (samples, n_spins)).sum(axis=1) for xi in x],
                        axis=1)                                        # (samples, slots)
    for parity in (0, 1):
        tempering = Tempering(temperatures, seed=parity)
        tempering.rounds = parity
        after = energies.copy()
        for row in after:
            for i in tempering.swaps(row):
                row[[i, i + 1]] = row[[i + 1, i]]
            tempering.rounds = parity                       # same pairs every round
        error = energies.std(axis=0) / np.sqrt(samples)
        assert np.all(np.abs(after.mean(axis=0) - energies.mean(axis=0)) < 4 * np.sqrt(2) * error)
        beta = 1.0 / (K_B * temperatures)
        for i in range(parity, len(temperatures) - 1, 2):
            expected = np.minimum(1.0, np.exp((beta[i] - beta[i + 1])
                                              * (energies[:, i] - energies[:, i + 1]))).mean()
            rate = tempering.accepted[i] / tempering.attempts[i]
            assert rate == pytest.approx(expected, abs=4 * np.sqrt(expected / samples))


def free_spins_tempering(temperatures, steps):
    """MC run file: free spins in FIELD, a swap attempt every sweep, observables every
    step to pt.h5 (pt.rNNN.h5)."""
    return heisenberg_run(
        hamiltonian={"shells": [[0.866, 0.0]]},
        dynamics={"integrator": "mc", "steps": steps, "field": [0.0, 0.0, FIELD]},
        replicas={"temperatures": temperatures, "exchange_every": 1},
        output={"trajectory": "pt.h5", "every": 1, "spins": False})


def test_parallel_tempering_run_samples_the_langevin_function(tmp_path):
    """MC + swaps every sweep on free spins in a field: ⟨m_z⟩ at each temperature is the
    Langevin function L(x) = coth x - 1/x, and the acceptance rates are written."""
    temperatures = [40.0, 80.0, 160.0]
    data = free_spins_tempering(temperatures, 3000)
    result = run_in(tmp_path, write(tmp_path, data))
    rates = result["tempering"].acceptance()
    assert np.all((rates > 0.05) & (rates < 0.95))
    for r, T in enumerate(temperatures):
        with h5py.File(tmp_path / f"pt.r{r:03d}.h5", "r") as h5:
            mz = h5["observables/magnetization/value"][500:, 2]
            written = h5["observables/swap_acceptance/value"][-1]
            assert h5["observables/walker/value"].attrs["unit"] == "1"
        x = MOMENT * MU_B * FIELD / (K_B * T)
        langevin = 1.0 / np.tanh(x) - 1.0 / x
        blocks = mz[: len(mz) // 50 * 50].reshape(50, -1).mean(axis=1)
        assert mz.mean() == pytest.approx(langevin, abs=4 * blocks.std() / np.sqrt(50) + 2e-3)
        if r < len(temperatures) - 1:
            assert written == pytest.approx(rates[r])
        else:
            assert np.isnan(written)


@pytest.mark.parametrize("change, message", [
    ({"replicas": {"temperatures": [300, 200], "exchange_every": 5}}, "strictly increasing"),
    ({"replicas": {"seeds": [1, 2], "exchange_every": 5}}, "two or more temperatures"),
    ({"replicas": {"temperatures": [300, 400], "seeds": [1]}}, "lengths must agree"),
    ({"replicas": {"exchange_every": 5}}, "give temperatures or seeds"),
    ({"replicas": {"temperatures": [300, 400]}, "dynamics": {"temperature": 300}},
     "dynamics.temperature: not used"),
    ({"replicas": {"temperatures": [300, 400], "swap_every": 3}}, "replicas.swap_every"),
])
def test_replica_section_errors(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_run(write(tmp_path, heisenberg_run(**change)))


def ensemble_config(folder, steps=160, **otf):
    data = yaml.safe_load(open(ENSEMBLE))
    data["dynamics"]["steps"] = steps
    data["replicas"].update(temperatures=[300, 600, 900], exchange_every=10)
    data["otf"].update({"threshold": 2.0, "max_oracle_calls": 12, "checkpoint_every": 40},
                       **otf)
    return write(folder, data, "ensemble.yaml")


def test_shared_learning_ensemble_restarts_bit_for_bit(tmp_path):
    """One model for all replicas (labels from several replicas join one store); an
    ensemble stopped after a checkpoint and restarted ends exactly as the uninterrupted one."""
    from otf_spin.learning.store import TrainingStore

    reference = tmp_path / "reference"
    reference.mkdir()
    result = run_in(reference, ensemble_config(reference))
    learner = result["learner"]
    store = TrainingStore(reference / "ensemble_store.h5")
    assert len(store) == learner.calls == learner.model.n_frames > 3
    steps = {f.info["provenance"].get("step") for f in store.frames()} - {None}
    assert len(steps) >= 2

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    path = ensemble_config(crashed)

    def crash(step, *_):
        if step == 90:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_in(crashed, path, monitor=crash)
    run_in(crashed, path)                                  # resumes from step 80
    for r in range(3):
        np.testing.assert_array_equal(spins(crashed / f"ensemble_run.r{r:03d}.h5"),
                                      spins(reference / f"ensemble_run.r{r:03d}.h5"))


class _Ranks:
    """The ``size``/``rank``/``Split`` of an MPI communicator, without MPI (JobGroups'
    grouping only)."""

    def __init__(self, size, rank):
        self.size, self.rank = size, rank

    def Split(self, color=0, key=0):
        return _Ranks(1, 0)


@pytest.mark.parametrize("size, per_job, used", [
    (5, 2, "1 group of 2 ranks and one group of 3 ranks"),
    (1, 2, "one group of 1 rank"),
    (11, 3, "2 groups of 3 ranks and one group of 5 ranks"),
])
def test_job_groups_warn_when_the_ranks_are_not_a_multiple(size, per_job, used):
    """ranks_per_oracle_job that does not divide the ranks: rank 0 warns, naming the key,
    the requested value and the group sizes used; a multiple is silent."""
    import warnings

    from otf_spin.parallel.jobs import JobGroups

    with pytest.warns(UserWarning, match=rf"ranks_per_oracle_job: {per_job} requested, but "
                                         rf"the {size} ranks are not a multiple of it; "
                                         rf"oracle jobs run on {re.escape(used)}$"):
        JobGroups(_Ranks(size, 0), per_job)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        JobGroups(_Ranks(size, size - 1), per_job) if size > 1 else None   # not rank 0
        JobGroups(_Ranks(2 * per_job, 0), per_job)
