"""Reference calculators ("oracles"), discovered through the entry-point group
``otf_spin.oracles`` (``importlib.metadata``), never by scanning modules.

Each entry point names an :class:`~otf_spin.oracles.base.Oracle` subclass; an
oracle YAML block is ``type: <entry-point name>`` plus that class's schema keys
(registry and block schema: :mod:`otf_spin.config.oracles`).
"""
from __future__ import annotations

import os

from otf_spin.config.engine import load_yaml
from otf_spin.config.oracles import available, block_schema, get_class, validate_block
from otf_spin.core import ConfigError, Frame, OracleFailure
from otf_spin.oracles.base import Oracle
from otf_spin.progress import progress_bar

__all__ = ["Oracle", "OracleFailure", "available", "get_class", "from_block", "from_settings",
           "load_file", "block_schema"]


def from_settings(settings: dict, context: dict | None = None) -> Oracle:
    """Build the oracle of a validated oracle block (:func:`validate_block`)."""
    values = dict(settings)
    return get_class(values.pop("type")).from_config(values, context or {})


def from_block(block: dict, where: str = "", base_dir: str = ".",
               context: dict | None = None) -> Oracle:
    """Validate an oracle block and build the oracle."""
    return from_settings(validate_block(block, where, base_dir), context)


def load_file(path, context: dict | None = None) -> Oracle:
    """Build the oracle described by an oracle YAML file."""
    data = load_yaml(path)
    try:
        return from_block(data, base_dir=os.path.dirname(os.path.abspath(path)), context=context)
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None


def label_frames(oracle: Oracle, frames, progress: bool = False) -> list:
    """Label extxyz :class:`~otf_spin.core.Frame` objects; returns new frames.

    Results replace the frames' labels; moments take the oracle's magnitudes.
    An :class:`OracleFailure` names the frame that failed.
    """
    out = []
    for k, frame in enumerate(progress_bar(frames, "labelling", enabled=progress)):
        system = frame.system.copy()
        try:
            results = oracle.compute(system)
        except OracleFailure as exc:
            raise OracleFailure(f"frame {k}", exc.kind, exc.reason) from None
        if "magmoms" in results:
            system.moments = results["magmoms"]
        labels = {key: results[key] for key in ("energy", "fields", "forces") if key in results}
        out.append(Frame(system, labels, dict(frame.info, oracle=oracle.name)))
    return out
