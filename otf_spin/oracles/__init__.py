"""Reference calculators ("oracles"), discovered through the entry-point group
``otf_spin.oracles`` (``importlib.metadata``), never by scanning modules.

Each entry point names an :class:`~otf_spin.oracles.base.Oracle` subclass; an
oracle YAML block is ``type: <entry-point name>`` plus that class's schema keys.
"""
from __future__ import annotations

from importlib.metadata import entry_points

from otf_spin.io.config import ConfigError, Key, Section, load_yaml
from otf_spin.oracles.base import Oracle, OracleFailure

__all__ = ["Oracle", "OracleFailure", "available", "get_class", "from_block", "load_file",
           "block_schema"]

GROUP = "otf_spin.oracles"


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of the installed oracles."""
    return sorted(_entry_points())


def get_class(name: str) -> type[Oracle]:
    eps = _entry_points()
    if not isinstance(name, str) or name not in eps:
        raise ConfigError(f"type: unknown oracle {name!r} (installed: {', '.join(sorted(eps))})")
    return eps[name].load()


def block_schema(block: dict, where: str = "") -> Section:
    """Schema of an oracle block: ``type`` plus the keys of the named oracle."""
    if not isinstance(block, dict):
        raise ConfigError(f"{where or 'top level'}: expected a mapping with 'type'")
    if "type" not in block:
        raise ConfigError(f"{where + '.' if where else ''}type: required key is missing "
                          f"(one of {', '.join(available())})")
    cls = get_class(block["type"])
    keys = {"type": Key("str", "oracle plug-in name", choices=tuple(available()))}
    keys.update(cls.schema.keys)
    return Section(keys, cls.schema.doc, cls.schema.check)


def from_block(block: dict, where: str = "", base_dir: str = ".",
               context: dict | None = None) -> Oracle:
    """Validate an oracle block and build the oracle."""
    schema = block_schema(block, where)
    values = schema.validate(block, where, base_dir)
    return get_class(values.pop("type")).from_config(values, context or {})


def load_file(path, context: dict | None = None) -> Oracle:
    """Build the oracle described by an oracle YAML file."""
    import os

    data = load_yaml(path)
    try:
        return from_block(data, base_dir=os.path.dirname(os.path.abspath(path)), context=context)
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None


def label_frames(oracle: Oracle, frames, progress: bool = False) -> list:
    """Label extxyz :class:`~otf_spin.io.extxyz.Frame` objects; returns new frames.

    Results replace the frames' labels; moments take the oracle's magnitudes.
    An :class:`OracleFailure` names the frame that failed.
    """
    from otf_spin.io.extxyz import Frame
    from otf_spin.progress import progress_bar

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
