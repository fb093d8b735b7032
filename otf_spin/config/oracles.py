"""Oracle blocks: the plug-in registry (entry-point group ``otf_spin.oracles``) and the
schema of an oracle block, ``type: <entry-point name>`` plus the plug-in's own keys
(its class attribute ``schema``). Building the oracle is :func:`otf_spin.oracles.from_block`.
"""
from __future__ import annotations

import os
import shlex
from importlib.metadata import entry_points

from otf_spin.config.engine import Key, Section, freeze
from otf_spin.core import ConfigError

GROUP = "otf_spin.oracles"

#: the ``moment:`` key every oracle block has (frames that give only spin directions)
MOMENT_KEY = Key("quantity", "moment magnitude for frames giving only directions", 2.2,
                 unit="μB", dimension="moment", minimum=0.0)


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of the installed oracles."""
    return sorted(_entry_points())


def get_class(name: str) -> type:
    """The :class:`~otf_spin.oracles.base.Oracle` subclass installed under ``name``."""
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
    try:
        cls = get_class(block["type"])
    except ConfigError as exc:
        raise ConfigError(f"{where + '.' if where else ''}{exc}") from None
    keys = {"type": Key("str", "oracle plug-in name", choices=tuple(available()))}
    keys.update(cls.schema.keys)
    return Section(keys, cls.schema.doc, cls.schema.check)


def validate_block(block: dict, where: str = "", base_dir: str = ".") -> dict:
    """The validated oracle block (internal units), ``type`` included. ``{here}`` in a
    launch ``command`` becomes the (quoted, absolute) folder of the YAML file: jobs run in
    their own folders, where a script's relative path would not be found."""
    values = block_schema(block, where).validate(block, where, base_dir)
    command = values.get("command")
    if isinstance(command, str) and "{here}" in command:
        here = shlex.quote(os.path.abspath(base_dir)).replace("{", "{{").replace("}", "}}")
        values = freeze({**values, "command": command.replace("{here}", here)})
    return values
