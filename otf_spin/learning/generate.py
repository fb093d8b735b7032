"""Automated training-set generation: ``otf-spin generate gen.yaml`` (settings:
:mod:`otf_spin.config.generate`, read by :func:`otf_spin.factory.load_generate`).

The paper's pipeline (UppASD Monte Carlo -> pick configurations -> VASP) in one command:

1. **cells** — supercells of the crystal: the ones listed, plus (``auto``) repeats
   [n1, n2, n3] (n ≥ 2, fewest atoms first) added while they raise the number of exchange
   shells within the descriptor cutoff that the cells together can tell apart
   (:func:`otf_spin.model.aliasing.shell_rank`); a 16-atom bcc cell alone resolves 4 of
   the 9 shells within 7 Å, 16 + 24 + 36 atoms resolve all 9;
2. **sampling** — Metropolis MC on a cheap provider (the Heisenberg reference, or a fitted
   model) in every cell at every temperature; a negative temperature samples exp(+|β|E),
   the antiparallel side of configuration space that ferromagnetic dynamics never visits
   but transferable exchange fits need; optional Gaussian displacements of the atoms. The
   candidates are written to an extxyz file (reused on restart when the settings match);
3. **selection** — ``farthest_point``: frames chosen greedily so that the largest distance
   of any candidate atomic environment to the chosen ones (standardised SOSO descriptor
   space) shrinks fastest; ``variance``: the largest per-atom field σ of a model (the
   quantity the on-the-fly loop triggers on, :func:`otf_spin.learning.otf.field_uncertainty`);
   ``random``; ``all``;
4. **labelling** — oracle jobs spread over the MPI rank groups (as in on-the-fly runs), in
   rounds of one job per group; each round is stored at once in the training store, so an
   interrupted run resumes where it stopped (stored configurations are not labelled again);
5. **output** — the training store (HDF5) and an extxyz copy for ``otf-spin train``.

Sampling jobs (cell, temperature) have their own random streams and are spread over the
ranks, so the result does not depend on the number of ranks.
"""
from __future__ import annotations

import itertools
import os

import numpy as np

from otf_spin.core import ConfigError, Frame
from otf_spin.driver import Observer, Replica, Session, drive
from otf_spin.dynamics import montecarlo
from otf_spin.io.atomic import check_outputs
from otf_spin.io.extxyz import read_frames, write_frames
from otf_spin.learning.labelling import label_collective
from otf_spin.learning.otf import OnTheFly, field_uncertainty
from otf_spin.learning.store import TrainingStore
from otf_spin.model import load
from otf_spin.model.aliasing import shell_rank, shortest_lattice_vector
from otf_spin.model.factory import build_model
from otf_spin.parallel import owned
from otf_spin.parallel.jobs import JobGroups
from otf_spin.progress import progress_bar
from otf_spin.system import SpinSystem, bulk, random_sphere


# --- cells ------------------------------------------------------------------------------
def build_cells(system_cfg: dict, cells_cfg: dict, r_cut: float):
    """([(name, SpinSystem)], identifiable shells, all shells) of the cells section."""
    from ase.build import make_supercell

    s = system_cfg

    def repeated(n):
        return bulk(s["lattice"], s["a"], n, s["species"], s["moment"], s["c"])

    cells = [("x".join(map(str, n)), repeated(n)) for n in cells_cfg["repeats"]]
    base = repeated((1, 1, 1))
    for k, matrix in enumerate(cells_cfg["matrices"]):
        if round(abs(np.linalg.det(matrix))) == 0:
            raise ConfigError(f"cells.matrices[{k}]: singular matrix {matrix}")
        atoms = make_supercell(base.to_ase(), np.array(matrix))
        cells.append((f"P{k}", SpinSystem.from_ase(atoms, s["moment"])))
    rank, shells = shell_rank([c for _, c in cells], r_cut) if cells else (0, np.zeros(0))
    if cells_cfg["auto"]:
        per_cell = len(base)
        lo, hi = cells_cfg["min_atoms"], cells_cfg["max_atoms"]
        candidates = []
        for n in itertools.combinations_with_replacement(range(2, hi // (4 * per_cell) + 1), 3):
            atoms = per_cell * int(np.prod(n))
            if lo <= atoms <= hi:
                cell = repeated(n)
                candidates.append((atoms, -shortest_lattice_vector(cell.cell, cell.pbc), n,
                                   cell))
        for atoms, _, n, cell in sorted(candidates, key=lambda c: c[:3]):
            new_rank, new_shells = shell_rank([c for _, c in cells] + [cell], r_cut)
            if new_rank > rank:
                cells.append(("x".join(map(str, n)), cell))
                rank, shells = new_rank, new_shells
                if rank == len(shells):
                    break
    if not cells:
        raise ConfigError(f"cells: no repeats of {lo}–{hi} atoms; widen min_atoms/max_atoms")
    return cells, rank, shells


# --- sampling -----------------------------------------------------------------------------
def sample_cell(name: str, cell, temperature: float, sampler_cfg: dict, stream) -> list:
    """Candidate frames (unlabelled :class:`Frame`) of one cell at one temperature (K;
    negative: exp(+|β|E)). ``stream`` seeds the job's own generator. After the
    equilibration sweeps the sampler runs under the run driver
    (:func:`otf_spin.driver.drive`) with an observer that takes a sample every
    ``interval`` sweeps."""
    rng = np.random.default_rng(stream)
    system = cell.copy()
    if temperature < 0:
        system.set_directions(random_sphere(len(system), rng))
    hamiltonian = sampler_cfg["hamiltonian"]
    if hamiltonian["kind"] == "oracle":
        mc = montecarlo.HeisenbergMonteCarlo(hamiltonian["oracle"], system,
                                             inverted=temperature < 0)
    else:
        mc = montecarlo.ModelMonteCarlo(load(hamiltonian["file"]), system)
    state = montecarlo.new_state(system, rng)
    mc.equilibrate(state, abs(temperature), sampler_cfg["equilibrate"])
    sampling = Replica(_Job(name, (abs(temperature), abs(temperature))), system,
                       propagator=mc, state=state)
    samples = _Samples(sampling, cell, temperature, sampler_cfg, rng)
    drive([sampling], [samples], 0, sampler_cfg["samples"] * sampler_cfg["interval"],
          initial=False)
    return samples.frames


class _Job:
    """The spec of a sampling job as :class:`otf_spin.driver.Replica` reads it."""

    def __init__(self, name, temperature):
        self.index, self.temperature = name, temperature


class _Samples(Observer):
    """Every ``interval`` sweeps, the sampled directions as a candidate frame of ``cell``
    (displaced atoms with ``displacement``)."""

    def __init__(self, replica, cell, temperature, sampler_cfg, rng):
        self.replica, self.cell, self.temperature = replica, cell, temperature
        self.cfg, self.rng, self.frames = sampler_cfg, rng, []

    def notify(self, step: int) -> None:
        if step % self.cfg["interval"]:
            return
        sample = self.cell.copy()
        sample.set_directions(self.replica.state.directions.copy())
        if self.cfg["displacement"]:
            sample.positions = sample.positions + self.rng.normal(
                scale=self.cfg["displacement"], size=sample.positions.shape)
        self.frames.append(Frame(sample, {}, {"supercell": self.replica.spec.index,
                                              "sampler_temperature": self.temperature,
                                              "sample": len(self.frames)}))


# --- selection ----------------------------------------------------------------------------
def farthest_point_frames(features, count: int) -> tuple[list[int], list[float]]:
    """Greedy farthest-point selection of frames by their atomic environments.

    ``features``: one (N_f, D) array per frame. Each step takes the frame holding the
    environment farthest from all environments chosen so far (the first: farthest from
    the mean); columns are standardised first. Returns (frame indices in selection order,
    coverage radius after each choice: the largest distance of any environment to the
    frames chosen so far)."""
    X = np.concatenate(features)
    owner = np.repeat(np.arange(len(features)), [len(f) for f in features])
    X = X - X.mean(axis=0)
    std = X.std(axis=0)
    X = X[:, std > 1e-12 * max(std.max(), 1e-300)] / std[std > 1e-12 * max(std.max(), 1e-300)]
    distance = np.linalg.norm(X, axis=1)      # to the mean, before anything is chosen
    chosen: list[int] = []
    covered: list[float] = []
    while len(chosen) < min(count, len(features)):
        k = int(owner[np.argmax(distance)])
        if chosen and distance.max() <= 1e-9:
            break                               # every environment already covered
        chosen.append(k)
        new = X[owner == k]
        to_new = np.sqrt(np.maximum(
            (X * X).sum(1)[:, None] - 2 * X @ new.T + (new * new).sum(1)[None, :], 0.0))
        distance = np.minimum(distance if len(chosen) > 1 else np.inf, to_new.min(axis=1))
        distance[owner == k] = 0.0                # exactly, whatever the round-off
        covered.append(float(distance.max()))
    return chosen, covered


def select(frames, select_cfg: dict, model_settings: dict, seed: int):
    """(indices of the chosen candidates, one-line summary)."""
    method, count = select_cfg["method"], min(select_cfg["count"], len(frames))
    if method == "all":
        return list(range(len(frames))), f"all {len(frames)} candidates"
    if method == "random":
        rng = np.random.default_rng([seed, 0x5E1])
        return sorted(rng.choice(len(frames), count, replace=False).tolist()), \
            f"{count} of {len(frames)} candidates at random"
    if method == "variance":
        model = load(select_cfg["model"])
        sigma = np.array([field_uncertainty(model.compute(f.system, OnTheFly.properties))
                          .max() for f in frames])
        chosen = np.argsort(-sigma, kind="stable")[:count].tolist()
        return chosen, (f"{count} of {len(frames)} candidates with the largest field σ "
                        f"({1e3 * sigma[chosen[-1]]:.2f}–{1e3 * sigma[chosen[0]]:.2f} meV/μB)")

    descriptor = build_model(model_settings).descriptor
    features = [descriptor.compute(f.system) for f in frames]
    chosen, covered = farthest_point_frames(features, count)
    return chosen, (f"{len(chosen)} of {len(frames)} candidates by farthest-point sampling "
                    f"of their {sum(map(len, features))} environments (coverage radius "
                    f"{covered[-1]:.2f} of {covered[0]:.2f} with one frame, standardised "
                    "units)")


# --- the command ------------------------------------------------------------------------------
def generate(cfg: dict, progress: bool = True, log=None, comm=None) -> dict:
    """Run a validated generate configuration (:func:`load_generate`) on the ranks of
    ``comm`` (default :func:`otf_spin.parallel.world`). Returns a summary (rank 0)."""
    session = Session.open(comm, log)
    comm, root, log = session.comm, session.root, session.log
    out, sampler = cfg["output"], cfg["sampler"]
    check_outputs([("output.store", out["store"], "training store"),
                   ("output.extxyz", out["extxyz"], "extxyz"),
                   ("output.candidates", out["candidates"], "extxyz"),
                   ("select.model", cfg["select"]["model"], None),
                   ("model_config", cfg.get("model_config"), None)])
    store = TrainingStore(out["store"]) if root else None
    other = comm.bcast(store.other_oracle(cfg["oracle"].settings()) if root else None)
    if other:
        raise ValueError(f"output.store: {other}")
    r_cut = cfg["model_settings"]["descriptor"]["r_cut"]

    cells, rank, shells = build_cells(cfg["system"], cfg["cells"], r_cut)
    for name, cell in cells:
        print(f"# cell {name}: {len(cell)} atoms, widths "
              f"{', '.join(f'{w:.2f}' for w in cell.cell_widths())} Å", file=log)
    print(f"# exchange shells within r_cut = {r_cut:.2f} Å identifiable by these cells: "
          f"{rank} of {len(shells)}" + ("" if rank == len(shells) else
                                         " (widen cells.max_atoms to resolve the rest)"),
          file=log, flush=True)

    candidates = None
    if root and os.path.exists(out["candidates"]):
        old = read_frames(out["candidates"])
        if all(f.info.get("generate_fingerprint") == cfg["fingerprint"] for f in old):
            candidates = old
            print(f"# reusing {len(old)} candidates from {out['candidates']}", file=log)
    if not comm.bcast(candidates is not None if root else None):
        jobs = [(c, t) for c in range(len(cells)) for t in range(len(sampler["temperatures"]))]
        mine = []
        for job in owned(len(jobs), comm):
            c, t = jobs[job]
            mine += sample_cell(cells[c][0], cells[c][1], sampler["temperatures"][t], sampler,
                                [sampler["seed"], c, t])
        parts = comm.gather(mine, root=0)
        if root:
            frames = [f for part in parts for f in part]
            for f in frames:
                f.info["generate_fingerprint"] = cfg["fingerprint"]
            write_frames(out["candidates"], frames)
            candidates = read_frames(out["candidates"])    # the exact bits reruns will see
            print(f"# sampled {len(candidates)} candidates ({len(cells)} cells × "
                  f"{len(sampler['temperatures'])} temperatures × {sampler['samples']}) -> "
                  f"{out['candidates']}", file=log, flush=True)

    chosen, summary = select(candidates, cfg["select"], cfg["model_settings"],
                             sampler["seed"]) if root else (None, None)
    probes = comm.bcast([candidates[k] for k in chosen] if root else None)
    print(f"# selected {summary}", file=log, flush=True)

    groups = JobGroups(comm, cfg["ranks_per_oracle_job"], cfg["oracle"])
    counts = {"labelled": 0, "reused": 0, "failed": 0, "seconds": 0.0}
    rounds = range(0, len(probes), groups.n_groups)
    for start in progress_bar(rounds, "labelling", enabled=progress and root):
        batch = probes[start:start + groups.n_groups]
        outcomes = label_collective([f.system for f in batch], cfg["oracle"], store, groups,
                                    cfg["retries"])
        if not root:
            continue
        new, provenance = [], []
        for frame, outcome in zip(batch, outcomes):
            for line in outcome.messages:
                print(line, file=log, flush=True)
            counts["seconds"] += outcome.seconds
            if outcome.labelled is None:
                counts["failed"] += 1
            elif outcome.labelled[1] is None:
                counts["reused"] += 1
            else:
                info = {k: frame.info[k] for k in ("supercell", "sampler_temperature", "sample")}
                new.append(outcome.labelled[0])
                provenance.append(dict(outcome.labelled[1], generate=info))
        counts["labelled"] += store.append(new, provenance)
    if not root:
        return {}
    labelled = [store.lookup(f.system) for f in probes]
    labelled = [f for f in labelled if f is not None]
    if labelled:
        write_frames(out["extxyz"], labelled)
    print(f"# labelled {counts['labelled']} new, {counts['reused']} already stored, "
          f"{counts['failed']} failed ({counts['seconds']:.1f} s oracle); training set "
          f"{len(labelled)} frames -> {out['store']}, {out['extxyz']}", file=log, flush=True)
    return {"cells": [name for name, _ in cells], "shell_rank": (rank, len(shells)),
            "candidates": len(candidates), "chosen": chosen, "frames": len(labelled), **counts}
