"""Which schema a YAML file follows, for ``otf-spin validate``: guess the kind from the
top-level keys, validate (and build, for the semantic checks of oracles) and describe.

Kinds (the keys that tell them: :data:`otf_spin.config.engine.FILE_KINDS`): ``generate``
(cells/sampler/select), ``run`` (system/dynamics/hamiltonian/otf/replicas), ``model``
(descriptor/kernels/noise sections), ``oracle`` (a top-level ``type:`` naming an oracle
plug-in).
"""
from __future__ import annotations

import os

from otf_spin import oracles
from otf_spin.config.engine import file_kind, load_yaml
from otf_spin.config.generate import GENERATE, SAMPLER
from otf_spin.config.model import MODEL
from otf_spin.config.otf import OTF
from otf_spin.config.replicas import REPLICAS
from otf_spin.config.run import DYNAMICS, OUTPUT, SYSTEM
from otf_spin.core import ConfigError
from otf_spin.factory import load_generate, load_run


def validate_any(path) -> tuple[str, dict]:
    """Validate ``path`` against the schema its keys announce; returns (kind, values)."""
    data = load_yaml(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    kind = file_kind(data)
    if kind == "generate":
        return kind, load_generate(path)
    if kind == "run":
        return kind, load_run(path)
    try:
        if kind == "model":
            return kind, MODEL.validate(data, base_dir=base_dir)
        if kind == "oracle":
            values = oracles.block_schema(data).validate(data, base_dir=base_dir)
            oracles.from_block(data, base_dir=base_dir)  # semantic checks (shells, files)
            return kind, values
        raise ConfigError("cannot tell the file kind: an oracle file has a top-level 'type' "
                          f"(one of {', '.join(oracles.available())}); a model file has "
                          "descriptor/kernels/noise")
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None


def describe(kind: str) -> str:
    """Key reference of a schema: 'model', or an oracle type name (e.g. 'heisenberg')."""
    if kind == "model":
        return "\n".join([f"# model file — {MODEL.doc}"] + MODEL.describe())
    if kind == "generate":
        return "\n".join([f"# generate file — {GENERATE.doc}"] + GENERATE.describe()
                         + ["sampler.hamiltonian: " + SAMPLER.doc.split("(plus ")[1][:-1],
                            "oracle: an oracle block (validate --describe heisenberg)"])
    if kind == "run":
        lines = ["# run file"]
        for name, section in (("system", SYSTEM), ("dynamics", DYNAMICS), ("output", OUTPUT)):
            lines += [f"{name}:"] + section.describe("  ")
        lines += ["hamiltonian: an oracle block (validate --describe heisenberg) or "
                  "{type: model, file: model.h5}",
                  "oracle: (on-the-fly runs, instead of hamiltonian) an oracle block",
                  "otf:"] + OTF.describe("  ")
        lines += ["replicas:"] + REPLICAS.describe("  ")
        return "\n".join(lines)
    if kind not in oracles.available():
        raise ConfigError(f"--describe: unknown kind {kind!r} (model, run, generate, or an "
                          f"oracle type: {', '.join(sorted(oracles.available()))})")
    cls = oracles.get_class(kind)
    lines = [f"# oracle file: type: {kind} — {cls.schema.doc}", "type: " + kind]
    return "\n".join(lines + cls.schema.describe())
