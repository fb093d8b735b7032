"""Which schema a YAML file follows, for ``otf-spin validate``.

Kinds: ``oracle`` (a top-level ``type:`` naming an oracle plug-in), ``model``
(descriptor/kernels/noise sections), ``generate`` (cells/sampler/select), ``run``
(system/hamiltonian/dynamics/output).
"""
from __future__ import annotations

import os

from otf_spin.io.config import ConfigError, load_yaml


def validate_any(path) -> tuple[str, dict]:
    """Validate ``path`` against the schema its keys announce; returns (kind, values)."""
    from otf_spin import oracles

    data = load_yaml(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    if set(data) & {"cells", "sampler", "select"}:
        from otf_spin.learning.generate import load_generate

        return "generate", load_generate(path)
    if "dynamics" in data or "system" in data:
        from otf_spin.io.runconfig import load_run

        return "run", load_run(path)
    try:
        if set(data) & {"descriptor", "kernels", "noise", "optimise"}:
            from otf_spin.model.config import MODEL

            return "model", MODEL.validate(data, base_dir=base_dir)
        if "type" in data:
            values = oracles.block_schema(data).validate(data, base_dir=base_dir)
            oracles.from_block(data, base_dir=base_dir)  # semantic checks (shells, files)
            return "oracle", values
        raise ConfigError("cannot tell the file kind: an oracle file has a top-level 'type' "
                          f"(one of {', '.join(oracles.available())}); a model file has "
                          "descriptor/kernels/noise")
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None


def describe(kind: str) -> str:
    """Key reference of a schema: 'model', or an oracle type name (e.g. 'heisenberg')."""
    from otf_spin import oracles

    if kind == "model":
        from otf_spin.model.config import MODEL

        return "\n".join([f"# model file — {MODEL.doc}"] + MODEL.describe())
    if kind == "generate":
        from otf_spin.learning.generate import GENERATE, SAMPLER

        return "\n".join([f"# generate file — {GENERATE.doc}"] + GENERATE.describe()
                         + ["sampler.hamiltonian: " + SAMPLER.doc.split("(plus ")[1][:-1],
                            "oracle: an oracle block (validate --describe heisenberg)"])
    if kind == "run":
        from otf_spin.io import runconfig as rc

        lines = ["# run file"]
        for name, section in (("system", rc.SYSTEM), ("dynamics", rc.DYNAMICS),
                              ("output", rc.OUTPUT)):
            lines += [f"{name}:"] + section.describe("  ")
        from otf_spin.learning.otf import SCHEMA as OTF

        lines += ["hamiltonian: an oracle block (validate --describe heisenberg) or "
                  "{type: model, file: model.h5}",
                  "oracle: (on-the-fly runs, instead of hamiltonian) an oracle block",
                  "otf:"] + OTF.describe("  ")
        from otf_spin.parallel.replicas import SCHEMA as REPLICAS

        lines += ["replicas:"] + REPLICAS.describe("  ")
        return "\n".join(lines)
    cls = oracles.get_class(kind)
    lines = [f"# oracle file: type: {kind} — {cls.schema.doc}", "type: " + kind]
    return "\n".join(lines + cls.schema.describe())
