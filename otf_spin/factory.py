"""Input files to objects: validated settings (:mod:`otf_spin.config`) plus the oracles
they name, built. ``load_run`` and ``load_generate`` are what ``otf-spin run`` and
``otf-spin generate`` read; every error is a one-line :class:`~otf_spin.core.ConfigError`
naming the file and the key."""
from __future__ import annotations

import hashlib
import json
import os

from otf_spin import oracles
from otf_spin.config.engine import Settings
from otf_spin.config.generate import validate_generate
from otf_spin.config.run import oracle_context, validate_run
from otf_spin.core import ConfigError
from otf_spin.io.atomic import file_digest


def build_hamiltonian(settings: dict, context: dict) -> dict:
    """A hamiltonian of validated settings (:func:`otf_spin.config.run.validate_hamiltonian`):
    {"kind": "model", "type": "model", "file": ...} as is, or {"kind": "oracle", "oracle":
    Oracle}."""
    if settings["kind"] == "model":
        return dict(settings)
    return {"kind": "oracle", "oracle": oracles.from_settings(settings["oracle"], context)}


def load_run(path) -> dict:
    """Validate a run file (:func:`otf_spin.config.run.validate_run`) and build its oracle
    (``oracle``, on-the-fly runs) or its ``hamiltonian`` oracle."""
    run = validate_run(path)
    context = oracle_context(run["system"])
    try:
        if "oracle" in run:
            run["oracle"] = oracles.from_settings(run["oracle"], context)
        else:
            run["hamiltonian"] = build_hamiltonian(run["hamiltonian"], context)
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None
    return run


def load_generate(path) -> dict:
    """Validate a generate file (:func:`otf_spin.config.generate.validate_generate`), build
    the oracle and the sampler's hamiltonian (default: the oracle) and add the
    ``fingerprint`` of everything the candidates depend on."""
    cfg = validate_generate(path)
    context = {"a": cfg["system"]["a"]}
    try:
        cfg["oracle"] = oracles.from_settings(cfg["oracle"], context)
        sampled = cfg["sampler"]["hamiltonian"]
        cfg["sampler"] = Settings({**cfg["sampler"], "hamiltonian": {
            "kind": "oracle", "oracle": cfg["oracle"]} if sampled is None
            else build_hamiltonian(sampled, context)})
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None
    sampled = cfg["sampler"]["hamiltonian"]
    identity = {"system": cfg["system"], "cells": cfg["cells"],
                "sampler": {k: v for k, v in cfg["sampler"].items() if k != "hamiltonian"},
                "hamiltonian": sampled["oracle"].settings() if sampled["kind"] == "oracle"
                else file_digest(sampled["file"]),
                "descriptor": cfg["model_settings"]["descriptor"]}
    cfg["fingerprint"] = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str)
                                        .encode()).hexdigest()[:16]
    cfg["fingerprint"] = "fp-" + cfg["fingerprint"]        # a string in extxyz, never a number
    return cfg
