"""Schema of generate files (``otf-spin generate gen.yaml``, :mod:`otf_spin.learning.generate`)."""
from __future__ import annotations

import os

from otf_spin.config.engine import (Key, Section, Settings, hdf5_name, load_yaml,
                                     validate_file)
from otf_spin.config.model import MODEL
from otf_spin.config.oracles import available, validate_block
from otf_spin.config.run import SYSTEM as RUN_SYSTEM
from otf_spin.config.run import validate_hamiltonian
from otf_spin.core import ConfigError

SYSTEM = Section({k: RUN_SYSTEM.keys[k] for k in ("lattice", "a", "c", "species", "moment")},
                 "the crystal (its conventional cell)")

CELLS = Section({
    "repeats": Key("list", "supercells: repeats [n1, n2, n3] of the conventional cell", [],
                   item=Key("list", "repeats", item=Key("int", "repeat", minimum=1),
                            length=3)),
    "matrices": Key("list", "supercells: 3×3 integer matrices P, rows = new cell vectors in "
                    "units of the conventional ones (ase.build.make_supercell)", [],
                    item=Key("list", "matrix", item=Key("list", "row", item=Key(
                        "int", "entry"), length=3), length=3)),
    "auto": Key("bool", "add repeats [n1, n2, n3] (n ≥ 2, fewest atoms first) while they "
                "raise the number of identifiable exchange shells within the cutoff", True),
    "min_atoms": Key("int", "auto: smallest cell", 16, minimum=1),
    "max_atoms": Key("int", "auto: largest cell", 54, minimum=1),
}, "training cells")


def _nonzero(value):
    return "a temperature of 0 K samples nothing" if value == 0 else None


SAMPLER = Section({
    "temperatures": Key("list", "MC temperatures; a negative one samples exp(+|β|E), the "
                        "antiparallel side (Heisenberg samplers)",
                        [300.0, 1000.0, 3000.0, -3000.0, -1000.0, -300.0],
                        item=Key("quantity", "temperature", unit="K", dimension="temperature",
                                 check=_nonzero)),
    "equilibrate": Key("int", "MC sweeps before sampling (trial width adapts)", 500,
                       minimum=0),
    "samples": Key("int", "samples per cell and temperature", 10, minimum=1),
    "interval": Key("int", "MC sweeps between samples", 20, minimum=1),
    "displacement": Key("quantity", "std of Gaussian atomic displacements of every sample "
                        "(0: ideal lattice)", 0.0, unit="angstrom", dimension="length",
                        minimum=0.0),
    "seed": Key("int", "seed of the sampling and selection streams", 1, minimum=0),
}, "sampling (plus hamiltonian: the provider sampled; default: the oracle if it is a "
   "heisenberg oracle)")

SELECT = Section({
    "method": Key("str", "farthest_point (SOSO descriptor space), variance (largest per-atom "
                  "field σ of select.model, as the on-the-fly trigger), random, or all",
                  "farthest_point",
                  choices=("farthest_point", "variance", "random", "all")),
    "count": Key("int", "frames to label", 50, minimum=1),
    "model": Key("path", "model file (method: variance)", None),
}, "selection")

OUTPUT = Section({
    "store": Key("str", "training store (HDF5, append-only; a rerun resumes from it)",
                 "training_store.h5", check=hdf5_name),
    "extxyz": Key("str", "extxyz copy of the generated set (for otf-spin train)", "train.xyz"),
    "candidates": Key("str", "sampled candidates (extxyz; reused when the settings match)",
                      "candidates.xyz"),
}, "output files")

GENERATE = Section({
    "system": Key("section", "the crystal", section=SYSTEM),
    "cells": Key("section", "training cells", {}, section=CELLS),
    "sampler": Key("section", "sampling", {}, section=SAMPLER),
    "select": Key("section", "selection", {}, section=SELECT),
    "output": Key("section", "output files", {}, section=OUTPUT),
    "model_config": Key("path", "model YAML whose descriptor defines the cutoff and the "
                        "descriptor space (default: train's defaults)", None),
    "retries": Key("int", "retries of a failed oracle job before it is skipped", 1,
                   minimum=0),
    "ranks_per_oracle_job": Key("int", "MPI ranks per oracle job ({ranks} in the launch "
                                "command)", 1, minimum=1),
}, "training-set generation (plus oracle: the labeller, an oracle block)")


def validate_generate(path) -> dict:
    """Validate a generate file; returns its sections in internal units, the oracle block
    and the sampler's hamiltonian as validated settings (built, and the fingerprint of the
    candidates computed, by :func:`otf_spin.factory.load_generate`) and the model settings."""
    data = dict(load_yaml(path, "generate"))
    base_dir = os.path.dirname(os.path.abspath(path))
    try:
        if "oracle" not in data:
            raise ConfigError("oracle: required section is missing (the labeller: an oracle "
                              f"block, one of {', '.join(available())})")
        oracle_block = data.pop("oracle")
        sampler = data.get("sampler") or {}
        if not isinstance(sampler, dict):
            raise ConfigError("sampler: expected a mapping")
        sampler = dict(sampler)
        hamiltonian = sampler.pop("hamiltonian", None)
        data["sampler"] = sampler
        cfg = dict(GENERATE.validate(data, "", base_dir))      # sections: read-only
        cfg["oracle"] = validate_block(oracle_block, "oracle", base_dir)
        if hamiltonian is None:
            if cfg["oracle"]["type"] != "heisenberg":
                raise ConfigError("sampler.hamiltonian: required unless the oracle is a "
                                  "heisenberg oracle (a cheap provider to sample with: a "
                                  "heisenberg block or {type: model, file: model.h5})")
            sampled = None                                # the labeller samples
        else:
            sampled = validate_hamiltonian(hamiltonian, base_dir, "sampler.hamiltonian")
        cfg["sampler"] = Settings({**cfg["sampler"], "hamiltonian": sampled})
        if (cfg["sampler"]["hamiltonian"] or {}).get("kind") == "model" and \
                min(cfg["sampler"]["temperatures"]) < 0:
            raise ConfigError("sampler.temperatures: negative temperatures need a heisenberg "
                              "sampler (the model sampler takes positive ones)")
        if cfg["select"]["method"] == "variance" and not cfg["select"]["model"]:
            raise ConfigError("select.model: method variance needs a model file")
        cells = cfg["cells"]
        if not cells["repeats"] and not cells["matrices"] and not cells["auto"]:
            raise ConfigError("cells: no cells (give repeats or matrices, or auto: true)")
        if cells["min_atoms"] > cells["max_atoms"]:
            raise ConfigError("cells.min_atoms: larger than cells.max_atoms")
        cfg["model_settings"] = validate_file(cfg["model_config"], MODEL, "model") \
            if cfg["model_config"] else MODEL.validate({})
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None
    return cfg
