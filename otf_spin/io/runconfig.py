"""Schema of run files (``otf-spin run run.yaml``): system, hamiltonian, dynamics, output.

Input files named in a run file are found relative to the run file; output files are
written relative to the working directory. The ``hamiltonian`` section is an oracle block (``type: heisenberg`` ...) or a fitted
model (``type: model``, ``file: model.h5``). Every key documents its unit; quantities
also accept "number unit" strings (``timestep: 0.1 fs``).
"""
from __future__ import annotations

import math
import os

from otf_spin.io.config import ConfigError, Key, Section, load_yaml
from otf_spin.system import LATTICES

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
                  minimum=1e-6),
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
    "timestep": Key("quantity", "LLG time step", 0.1e-3, unit="fs", dimension="time",
                    minimum=1e-12),
    "damping": Key("float", "Gilbert damping α", 0.1, minimum=0.0),
    "temperature": Key("ramp", "temperature, or [T0, T1] ramped linearly over the run",
                       (0.0, 0.0), unit="K", dimension="temperature", minimum=0.0),
    "steps": Key("int", "number of steps (MC: sweeps)", minimum=1),
    "seed": Key("int", "seed of the random stream", 1, minimum=0),
    "field": Key("list", "external field", [0.0, 0.0, 0.0],
                 item=Key("quantity", "component", unit="T", dimension="field"), length=3),
}, "dynamics")

OUTPUT = Section({
    "trajectory": Key("str", "H5MD trajectory file", "run.h5"),
    "every": Key("int", "write observables (and spins) every N steps", 10, minimum=1),
    "spins": Key("bool", "write the spin directions to the trajectory", True),
    "log_every": Key("int", "log line every N steps (0: ten lines per run)", 0, minimum=0),
}, "output")

MODEL_HAMILTONIAN = Section({
    "type": Key("str", "fitted GAP-SOSO model", choices=("model",)),
    "file": Key("path", "model file from otf-spin train"),
}, "fitted model")


def hamiltonian_block(block, base_dir, context, where="hamiltonian"):
    """A validated hamiltonian: {"kind": "model", "file": ...} or {"kind": "oracle",
    "oracle": Oracle}."""
    from otf_spin import oracles

    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a mapping with 'type'")
    if block.get("type") == "model":
        values = MODEL_HAMILTONIAN.validate(block, where, base_dir)
        return {"kind": "model", **values}
    return {"kind": "oracle", "oracle": oracles.from_block(block, where, base_dir, context)}


SECTIONS = ("system", "hamiltonian", "dynamics", "output", "oracle", "otf", "replicas")


def load_run(path) -> dict:
    """Validate a run file; returns sections with internal units and built objects.

    A plain run needs system, hamiltonian, dynamics; an on-the-fly run has oracle and
    otf instead of hamiltonian (the model it learns is the hamiltonian)."""
    from otf_spin import oracles
    from otf_spin.learning.otf import SCHEMA as OTF

    data = load_yaml(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    try:
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown section (allowed: {', '.join(SECTIONS)})")
        on_the_fly = "otf" in data or "oracle" in data
        needed = ("system", "dynamics", "oracle", "otf") if on_the_fly else \
            ("system", "hamiltonian", "dynamics")
        for section in needed:
            if section not in data:
                raise ConfigError(f"{section}: required section is missing"
                                  + (" (on-the-fly runs need oracle and otf)" if on_the_fly
                                     else ""))
        if on_the_fly and "hamiltonian" in data:
            raise ConfigError("hamiltonian: not used by on-the-fly runs (the learned model is "
                              "the hamiltonian; start from a model with otf.model)")
        system = SYSTEM.validate(data["system"], "system", base_dir)
        if system["spins"] == "file" and not system["spins_file"]:
            raise ConfigError("system.spins_file: required with spins: file")
        run = {"system": system,
               "dynamics": DYNAMICS.validate(data["dynamics"], "dynamics", base_dir),
               "output": OUTPUT.validate(data.get("output"), "output", base_dir)}
        if "replicas" in data:
            from otf_spin.parallel.replicas import SCHEMA as REPLICAS

            run["replicas"] = REPLICAS.validate(data["replicas"], "replicas", base_dir)
            if run["replicas"]["temperatures"] and "temperature" in (data["dynamics"] or {}):
                raise ConfigError("dynamics.temperature: not used when replicas.temperatures "
                                  "is given (one temperature per replica)")
        context = {"a": system["a"]}
        if on_the_fly:
            run["oracle"] = oracles.from_block(data["oracle"], "oracle", base_dir, context)
            run["otf"] = OTF.validate(data["otf"], "otf", base_dir)
            if run["dynamics"]["integrator"] == "mc":
                raise ConfigError("dynamics.integrator: on-the-fly runs use an LLG integrator")
            from otf_spin.io.config import validate_file
            from otf_spin.model.config import MODEL

            run["otf"]["model_settings"] = validate_file(run["otf"]["model_config"], MODEL) \
                if run["otf"]["model_config"] else MODEL.validate({})
        else:
            run["hamiltonian"] = hamiltonian_block(data["hamiltonian"], base_dir, context)
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None
    return run
