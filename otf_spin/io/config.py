"""Strict YAML configuration: duplicate/unknown keys, wrong types and units are errors.

Every key declares its type, unit and meaning (``Key``); a section is a dict of
keys (``Section``). Validation returns plain dicts of internal-unit values with
defaults filled in, and raises :class:`ConfigError` whose message names the
file and the dotted key, one line, e.g.
``run.yaml: dynamics.timestep: unit 'K' is a temperature unit, expected time``.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from otf_spin.units import INTERNAL, UnitError, parse_quantity

REQUIRED = object()


class ConfigError(ValueError):
    """Invalid configuration; ``str(err)`` is a one-line message naming file and key."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                              f"(first on line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _construct_mapping)


def load_yaml(path) -> dict:
    """Parse a YAML file strictly; errors are :class:`ConfigError` naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_StrictLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}invalid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


@dataclass
class Key:
    """One configuration key.

    kind: 'float', 'int', 'bool', 'str', 'quantity' (number or "number unit" of
    ``dimension``, default unit ``unit``), 'path' (file, must exist, relative to
    the YAML file), 'ramp' (a quantity or [start, end], returned as a pair),
    'mapping' (free-form names to scalars),
    'list' (of ``item``), 'row' (fixed-length list whose entries
    follow ``columns``), 'section' (``section``). Defaults are internal-unit values.
    """

    kind: str
    doc: str
    default: Any = REQUIRED
    unit: str | None = None
    dimension: str | None = None
    choices: tuple | None = None
    item: "Key | None" = None
    columns: "tuple | None" = None
    length: int | None = None
    section: "Section | None" = None
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None
    nullable: bool = False

    def describe(self) -> str:
        unit = f" [{self.unit}]" if self.unit else ""
        choices = f" one of {', '.join(map(str, self.choices))}." if self.choices else ""
        default = "" if self.default is REQUIRED else f" Default: {self._shown_default()!r}."
        return f"{self.doc}{unit}{choices}{default}"

    def _shown_default(self):
        """The default in the key's documented unit (defaults are kept internally)."""
        from otf_spin.units import UNITS

        if self.kind in ("quantity", "ramp") and self.unit in UNITS and self.default is not None:
            factor = UNITS[self.unit][1]
            if self.kind == "ramp":
                return [round(v / factor, 12) for v in self.default]
            return round(self.default / factor, 12)
        return self.default


@dataclass
class Section:
    """A mapping of named keys; unknown keys are errors."""

    keys: dict[str, Key]
    doc: str = ""
    check: Callable[[dict], str | None] | None = field(default=None, repr=False)

    def validate(self, data, where: str = "", base_dir: str = ".") -> dict:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{where or 'top level'}: expected a mapping, got "
                              f"{type(data).__name__}")
        unknown = sorted(set(data) - set(self.keys), key=str)
        if unknown:
            raise ConfigError(f"{_join(where, unknown[0])}: unknown key (allowed: "
                              f"{', '.join(self.keys)})")
        out = {}
        for name, key in self.keys.items():
            path = _join(where, name)
            if name not in data:
                if key.default is REQUIRED:
                    raise ConfigError(f"{path}: required key is missing ({key.describe()})")
                out[name] = _validate(key, key.default, path, base_dir) \
                    if key.default is not None and key.kind == "section" \
                    else copy.deepcopy(key.default)   # never hand out the shared default
                continue
            out[name] = _validate(key, data[name], path, base_dir)
        if self.check:
            message = self.check(out)
            if message:
                raise ConfigError(f"{where or 'top level'}: {message}")
        return out

    def describe(self, prefix: str = "") -> list[str]:
        """Lines "key: doc [unit]" for docs and ``otf-spin validate --describe``."""
        lines = []
        for name, key in self.keys.items():
            lines.append(f"{prefix}{name}: {key.describe()}")
            if key.kind == "section" and key.section is not None:
                lines.extend(key.section.describe(prefix + "  "))
        return lines


def _join(where: str, name) -> str:
    return f"{where}.{name}" if where else str(name)


def _validate(key: Key, value, path: str, base_dir: str):
    kind = key.kind
    if value is None and key.nullable:
        return None
    if kind == "section":
        return key.section.validate(value, path, base_dir)
    if kind == "list":
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if key.length is not None and len(value) != key.length:
            raise ConfigError(f"{path}: expected {key.length} entries, got {len(value)}")
        result = [_validate(key.item, v, f"{path}[{k}]", base_dir) for k, v in enumerate(value)]
    elif kind == "row":
        if not isinstance(value, list) or len(value) != len(key.columns):
            raise ConfigError(f"{path}: expected a list of {len(key.columns)} entries "
                              f"[{', '.join(c.doc for c in key.columns)}], got {value!r}")
        result = [_validate(c, v, f"{path}[{k}]", base_dir)
                  for k, (c, v) in enumerate(zip(key.columns, value))]
    elif kind == "quantity":
        try:
            result = parse_quantity(value, key.dimension, key.unit)
        except UnitError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    elif kind == "ramp":        # a quantity, or [start, end] linearly over the run
        values = value if isinstance(value, list) else [value, value]
        if len(values) != 2:
            raise ConfigError(f"{path}: expected a value or [start, end], got {value!r}")
        try:
            result = tuple(parse_quantity(v, key.dimension, key.unit) for v in values)
        except UnitError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if key.minimum is not None and min(result) < key.minimum:
            raise ConfigError(f"{path}: {value!r} is below the minimum {key.minimum}")
        return result
    elif kind == "mapping":     # free-form name -> scalar (e.g. extra INCAR tags)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of names to values, got {value!r}")
        for name, item in value.items():
            if not isinstance(name, str) or isinstance(item, (dict, list)) or item is None:
                raise ConfigError(f"{path}.{name}: expected a number, string or boolean, got "
                                  f"{item!r}")
        result = dict(value)
    elif kind in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind == "int" and not float(value).is_integer()):
            raise ConfigError(f"{path}: expected {'an integer' if kind == 'int' else 'a number'},"
                              f" got {value!r}")
        result = int(value) if kind == "int" else float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        result = value
    elif kind in ("str", "path"):
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        result = value
        if kind == "path":
            result = value if os.path.isabs(value) else os.path.join(base_dir, value)
            if not os.path.isfile(result):
                raise ConfigError(f"{path}: file {value!r} not found")
    else:  # pragma: no cover - schema programming error
        raise TypeError(f"unknown key kind {kind!r}")
    if key.choices is not None and result not in key.choices:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, key.choices))}")
    if key.minimum is not None and result < key.minimum:
        raise ConfigError(f"{path}: {value!r} is below the minimum {key.minimum}"
                          f"{' ' + INTERNAL.get(key.dimension, '') if key.dimension else ''}")
    if key.maximum is not None and result > key.maximum:
        raise ConfigError(f"{path}: {value!r} is above the maximum {key.maximum}")
    if key.check is not None:
        message = key.check(result)
        if message:
            raise ConfigError(f"{path}: {message}")
    return result


def validate_file(path, schema: Section) -> dict:
    """Load ``path`` strictly and validate it against ``schema``; errors name the file."""
    data = load_yaml(path)
    try:
        return schema.validate(data, base_dir=os.path.dirname(os.path.abspath(path)))
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None
