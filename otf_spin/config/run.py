"""Schema of run files (``otf-spin run run.yaml``): system, hamiltonian, dynamics, output.

Input files named in a run file are found relative to the run file; output files are
written relative to the working directory. The ``hamiltonian`` section is an oracle block (``type: heisenberg`` ...) or a fitted
model (``type: model``, ``file: model.h5``). Every key documents its unit; quantities
also accept "number unit" strings (``timestep: 0.1 fs``).

Bounds beyond the per-key ones: ``steps`` ≤ :data:`MAX_STEPS`; temperatures in
[0, :data:`MAX_TEMPERATURE`] K; moments in (0, 100] μB; the crystal's primitive cell
passes :func:`otf_spin.system.check_system` (atoms ≥ 0.5 Å apart); the system fits the
available memory (:data:`RUN_BYTES_PER_ATOM` per atom and replica); the LLG time step
keeps the precession per step γ·|B|·Δt ≤ :data:`MAX_PRECESSION` rad — checked here for
the external field and by :func:`check_timestep` for the hamiltonian's fields.
"""
from __future__ import annotations

import math
import os

import numpy as np

from otf_spin.config.engine import (Key, Section, Settings, hdf5_name, load_yaml,
                                     validate_file)
from otf_spin.config.model import MODEL
from otf_spin.config.oracles import available, validate_block
from otf_spin.config.otf import OTF
from otf_spin.config.replicas import REPLICAS
from otf_spin.core import ConfigError
from otf_spin.system import (ATOMS_PER_CELL, LATTICES, MAX_MOMENT, bulk, check_system,
                             require_memory)
from otf_spin.units import FS, GAMMA

#: longest run: 10⁹ steps (sweeps) — days even for a few spins; catches typos such as 10²⁹
MAX_STEPS = 10**9
#: highest temperature, K (far above any Curie temperature)
MAX_TEMPERATURE = 1e5
#: largest external field component, T
MAX_FIELD = 1e4
#: largest precession angle per LLG step, rad: γ·max|B|·Δt ≤ 1 (beyond one radian per
#: step the integrators no longer follow the precession; Heun's local error ~θ³/6)
MAX_PRECESSION = 1.0
#: memory a run needs per atom and replica (spins, fields, neighbour pairs, integrator
#: work arrays, descriptors of a model), bytes — an estimate checked before building
RUN_BYTES_PER_ATOM = 8192

SPIN_INIT = ("ferromagnetic", "random", "cone", "file")

SYSTEM = Section({
    "lattice": Key("str", "crystal lattice", choices=LATTICES),
    "a": Key("quantity", "lattice constant", unit="angstrom", dimension="length",
             minimum=1e-3),
    "c": Key("quantity", "hcp c (default ideal c/a)", None, unit="angstrom",
             dimension="length", minimum=1e-3),
    "repeat": Key("list", "conventional cells along a1, a2, a3", [1, 1, 1],
                  item=Key("int", "repeat", minimum=1), length=3),
    "species": Key("str", "chemical symbol", "Fe"),
    "moment": Key("quantity", "moment magnitude", unit="μB", dimension="moment",
                  minimum=1e-6, maximum=MAX_MOMENT),
    "spins": Key("str", "initial spins", "ferromagnetic", choices=SPIN_INIT),
    "axis": Key("list", "axis of ferromagnetic or cone spins", [0.0, 0.0, 1.0],
                item=Key("float", "component"), length=3),
    "cone_angle": Key("quantity", "half-angle of the cone for spins: cone", math.radians(30.0),
                      unit="deg", dimension="angle", minimum=0.0, maximum=math.pi),
    "spins_file": Key("path", "spins: file — extxyz (magmoms) or N×3 text table", None),
}, "the spin system")

DYNAMICS = Section({
    "integrator": Key("str", "depondt, sib, heun (stochastic LLG) or mc (Metropolis MC, "
                      "one step = one sweep)", "depondt",
                      choices=("depondt", "sib", "heun", "mc")),
    "timestep": Key("quantity", "LLG time step (γ·max|B|·Δt ≤ 1 rad)", 0.1e-3, unit="fs",
                    dimension="time", minimum=1e-12, maximum=1.0),
    "damping": Key("float", "Gilbert damping α", 0.1, minimum=0.0),
    "temperature": Key("ramp", "temperature, or [T0, T1] ramped linearly over the run",
                       (0.0, 0.0), unit="K", dimension="temperature", minimum=0.0,
                       maximum=MAX_TEMPERATURE),
    "steps": Key("int", "number of steps (MC: sweeps)", minimum=1, maximum=MAX_STEPS),
    "seed": Key("int", "seed of the random stream", 1, minimum=0),
    "field": Key("list", "external field", [0.0, 0.0, 0.0],
                 item=Key("quantity", "component", unit="T", dimension="field",
                          minimum=-MAX_FIELD, maximum=MAX_FIELD), length=3),
}, "dynamics")

OUTPUT = Section({
    "trajectory": Key("str", "H5MD trajectory file", "run.h5", check=hdf5_name),
    "every": Key("int", "write observables (and spins) every N steps", 10, minimum=1),
    "spins": Key("bool", "write the spin directions to the trajectory", True),
    "log_every": Key("int", "log line every N steps (0: ten lines per run)", 0, minimum=0),
}, "output")

MODEL_HAMILTONIAN = Section({
    "type": Key("str", "fitted GAP-SOSO model", choices=("model",)),
    "file": Key("path", "model file from otf-spin train"),
}, "fitted model")


def check_crystal(system: dict) -> None:
    """The ``system`` section builds a sane crystal: its primitive cell passes
    :func:`otf_spin.system.check_system` (atoms ≥ 0.5 Å apart) and ``axis`` has a length."""
    if not np.linalg.norm(system["axis"]) > 0:
        raise ConfigError("system.axis: the zero vector has no direction")
    cell = bulk(system["lattice"], system["a"], (1, 1, 1), system["species"],
                system["moment"], system["c"], primitive=True)
    try:
        check_system(cell, f"system ({system['lattice']}, a = {system['a']:g} Å"
                     + (f", c = {system['c']:g} Å)" if system["c"] else ")"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_size(system: dict, replicas: int = 1) -> None:
    """The crystal of ``system`` (× ``replicas``) fits the available memory."""
    n_atoms = ATOMS_PER_CELL[system["lattice"]][0] * float(np.prod(system["repeat"],
                                                                     dtype=float))
    try:
        require_memory(n_atoms * replicas * RUN_BYTES_PER_ATOM,
                       f"{n_atoms:.3g} atoms" + (f" × {replicas} replicas" if replicas > 1
                                                 else ""))
    except ValueError as exc:
        raise ConfigError(f"system.repeat: {system['repeat']}: {exc}") from None


def check_timestep(dynamics: dict, max_field: float) -> None:
    """Raise :class:`ConfigError` (``dynamics.timestep: ...``) if γ·max_field·Δt exceeds
    :data:`MAX_PRECESSION` rad; ``max_field`` (T) bounds |B_eff| over the atoms."""
    dt = dynamics["timestep"]
    if not np.isfinite(max_field):
        raise ConfigError(f"dynamics: the fields are not finite (|B| = {max_field} T)")
    if GAMMA * max_field * dt > MAX_PRECESSION:
        bound = MAX_PRECESSION / (GAMMA * max_field)
        raise ConfigError(f"dynamics.timestep: {dt / FS:g} fs turns a spin by "
                          f"{GAMMA * max_field * dt:.3g} rad per step in fields up to "
                          f"{max_field:.4g} T; the bound γ·|B|·Δt ≤ {MAX_PRECESSION:g} rad "
                          f"needs Δt ≤ {bound / FS:.4g} fs")


SECTIONS = ("system", "hamiltonian", "dynamics", "output", "oracle", "otf", "replicas")


def validate_hamiltonian(block, base_dir, where="hamiltonian") -> dict:
    """A validated hamiltonian block: {"kind": "model", "type": "model", "file": ...} or
    {"kind": "oracle", "oracle": <validated oracle block>}."""
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a mapping with 'type'")
    if block.get("type") == "model":
        values = MODEL_HAMILTONIAN.validate(block, where, base_dir)
        return Settings({"kind": "model", **values})
    if "type" in block and block["type"] not in available():
        raise ConfigError(f"{where}.type: unknown type {block['type']!r} (model: a fitted "
                          f"model file; or an oracle: {', '.join(available())})")
    return Settings({"kind": "oracle", "oracle": validate_block(block, where, base_dir)})


def oracle_context(system: dict) -> dict:
    """Run-level facts an oracle is built with: lattice constant ``a`` (Å) and the number
    of atoms of the validated ``system`` section."""
    return {"a": system["a"], "n_atoms": int(ATOMS_PER_CELL[system["lattice"]][0]
                                             * np.prod(system["repeat"]))}


def validate_run(path) -> dict:
    """Validate a run file; returns its sections in internal units (oracle blocks as
    validated settings, built by :func:`otf_spin.factory.load_run`).

    A plain run needs system, hamiltonian, dynamics; an on-the-fly run has oracle and
    otf instead of hamiltonian (the model it learns is the hamiltonian)."""
    data = load_yaml(path, "run")
    base_dir = os.path.dirname(os.path.abspath(path))
    try:
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown section (allowed: {', '.join(SECTIONS)})")
        on_the_fly = "otf" in data or "oracle" in data
        needed = ("system", "dynamics", "oracle", "otf") if on_the_fly else \
            ("system", "hamiltonian", "dynamics")
        why = "" if not on_the_fly else \
            f" (the {'otf' if 'otf' in data else 'oracle'} section makes this an on-the-fly " \
            "run: system, dynamics, oracle and otf; a plain run has system, hamiltonian and " \
            "dynamics)"
        for section in needed:
            if section not in data:
                raise ConfigError(f"{section}: required section is missing{why}")
        if on_the_fly and "hamiltonian" in data:
            raise ConfigError("hamiltonian: not used by on-the-fly runs (the learned model is "
                              "the hamiltonian; start from a model with otf.model)")
        system = SYSTEM.validate(data["system"], "system", base_dir)
        if system["spins"] == "file" and not system["spins_file"]:
            raise ConfigError("system.spins_file: required with spins: file")
        if system["spins_file"] and system["spins"] != "file":
            raise ConfigError(f"system.spins_file: read only with spins: file (spins is "
                              f"{system['spins']!r} here)")
        check_crystal(system)
        run = {"system": system,
               "dynamics": DYNAMICS.validate(data["dynamics"], "dynamics", base_dir),
               "output": OUTPUT.validate(data.get("output"), "output", base_dir)}
        replicas = 1
        if "replicas" in data:
            run["replicas"] = REPLICAS.validate(data["replicas"], "replicas", base_dir)
            if run["replicas"]["temperatures"] and "temperature" in (data["dynamics"] or {}):
                raise ConfigError("dynamics.temperature: not used when replicas.temperatures "
                                  "is given (one temperature per replica)")
            replicas = max(len(run["replicas"].get(k) or ()) for k in ("temperatures", "seeds"))
            for k, T in enumerate(run["replicas"]["temperatures"] or ()):
                if T > MAX_TEMPERATURE:
                    raise ConfigError(f"replicas.temperatures[{k}]: {T:g} K is above the "
                                      f"maximum {MAX_TEMPERATURE:g} K")
        check_size(system, max(replicas, 1))
        if run["dynamics"]["integrator"] != "mc":
            check_timestep(run["dynamics"], np.linalg.norm(run["dynamics"]["field"]))
        if on_the_fly:
            run["oracle"] = validate_block(data["oracle"], "oracle", base_dir)
            otf = OTF.validate(data["otf"], "otf", base_dir)
            if run["dynamics"]["integrator"] == "mc":
                raise ConfigError("dynamics.integrator: on-the-fly runs use an LLG integrator")
            model = validate_file(otf["model_config"], MODEL, "model") if otf["model_config"] \
                else MODEL.validate({})
            run["otf"] = Settings({**otf, "model_settings": model})
        else:
            run["hamiltonian"] = validate_hamiltonian(data["hamiltonian"], base_dir)
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None
    return run
