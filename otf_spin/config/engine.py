"""The schema engine. Strict YAML configuration: duplicate/unknown keys, wrong types and units are errors.

Every key declares its type, unit and meaning (``Key``); a section is a dict of
keys (``Section``). Validation returns plain dicts of internal-unit values with
defaults filled in, and raises :class:`ConfigError` whose message names the
file and the dotted key, one line, e.g.
``run.yaml: dynamics.timestep: unit 'K' is a temperature unit, expected time``.

Numbers: YAML 1.2 floats (``1e-3``, which YAML 1.1 reads as a string) are numbers; every
number must be finite, floats and quantities at most :data:`MAX_NUMBER` in magnitude (in
internal units) and integers within the 64-bit range; keys add their physical bounds.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from otf_spin.core import ConfigError, UnitError
from otf_spin.io import atomic
from otf_spin.units import INTERNAL, UNITS, parse_quantity

REQUIRED = object()

#: largest magnitude of any float or quantity (internal units: Å, eV, ps, K, μB, T, s);
#: larger values are typos or overflows, never physics
MAX_NUMBER = 1e12
#: integers must fit a signed 64-bit integer (seeds, counts reach numpy as int64)
MAX_INT = 2**63 - 1


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

#: YAML 1.2 floats: 1e-3, 1E5, -.5, 1.e3 are numbers (YAML 1.1 needs a dot and a signed
#: exponent, so PyYAML reads ``1e-3`` as a string); .inf/.nan parse and are rejected later
_FLOAT = re.compile(r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, _FLOAT if tag == "tag:yaml.org,2002:float" else regexp)
            for tag, regexp in resolvers]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def read_text(path, error: type = ConfigError) -> str:
    """The UTF-8 text of ``path``; ``error`` (an exception class) names the file and the
    line of a byte that is not UTF-8, or why the file cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise error(f"{path}: line {line}: not UTF-8 text (byte "
                    f"0x{data[exc.start]:02x})") from None


#: The top-level keys that tell each kind of otf-spin YAML file, in the order they are
#: tried (a generate file has system and oracle sections too).
FILE_KINDS = {"generate": ("cells", "sampler", "select"),
              "run": ("system", "dynamics", "hamiltonian", "otf", "replicas"),
              "model": ("descriptor", "kernels", "noise", "optimise", "select_terms"),
              "oracle": ("type",)}


def file_kind(data: dict) -> str | None:
    """The kind of YAML file whose top-level keys are ``data``'s (:data:`FILE_KINDS`), or
    None when no key tells."""
    return next((kind for kind, keys in FILE_KINDS.items() if set(data) & set(keys)), None)


def load_yaml(path, kind: str | None = None) -> dict:
    """Parse a YAML file strictly; errors are :class:`ConfigError` naming the file. With
    ``kind`` (a key of :data:`FILE_KINDS`), a file whose keys tell another kind is refused
    with what it is and what is expected."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such file")
    if atomic.file_kind(path) != "file" or atomic.is_hdf5_signature(path):
        raise ConfigError(f"{path}: {atomic.describe_file(path)}, not a YAML file (otf-spin info "
                          f"{os.path.basename(path)} tells what it holds)")
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML (nested too deeply)") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}invalid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    found = file_kind(data)
    if kind is not None and found not in (None, kind):
        keys = ", ".join(k for k in data if k in FILE_KINDS[found])
        article = {kind_: "an" if kind_ == "oracle" else "a" for kind_ in (found, kind)}
        see = "TYPE, e.g. heisenberg" if kind == "oracle" else kind
        raise ConfigError(f"{path}: this is {article[found]} {found} file (top-level {keys}), "
                          f"not {article[kind]} {kind} file (otf-spin validate --describe "
                          f"{see})")
    return data


class Settings(dict):
    """Validated settings: a read-only mapping of values in internal units (as a frozen
    dataclass: its lists keep their list type, so values print and compare as in the
    YAML), keys also readable as attributes (``settings.timestep``). :func:`thaw` gives
    an editable copy. JSON-serialisable and picklable as a dict."""

    __slots__ = ()

    def _read_only(self, *args, **kwargs):
        raise TypeError("validated settings are read-only (edit a copy: thaw(settings))")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self):
        return (Settings, (dict(self),))


def freeze(value):
    """A copy of ``value`` with every mapping, also inside lists, a :class:`Settings`."""
    if isinstance(value, dict):
        return Settings({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return [freeze(v) for v in value]
    return value


def thaw(value):
    """An editable deep copy of settings: plain dicts and lists."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


#: file name endings of the HDF5 outputs (trajectory, store, checkpoint, model)
HDF5_SUFFIXES = (".h5", ".hdf5", ".h5md", ".hdf", ".he5")


def hdf5_name(value: str) -> str | None:
    """A :class:`Key` check: None if ``value`` names an HDF5 file by its ending, else
    why not (``run.xyz`` would silently hold HDF5, which no xyz reader opens)."""
    if os.path.splitext(value)[1].lower() in HDF5_SUFFIXES:
        return None
    return (f"{value!r} would be written as HDF5: give it an HDF5 ending "
            f"({', '.join(HDF5_SUFFIXES[:3])})")


@dataclass
class Key:
    """One configuration key.

    kind: 'float', 'int', 'bool', 'str', 'quantity' (number or "number unit" of
    ``dimension``, default unit ``unit``), 'path' (file, must exist, relative to
    the YAML file), 'folder' (relative to the YAML file; its owner checks it), 'ramp'
    (a quantity or [start, end], returned as a pair), 'mapping' (free-form names to
    scalars),
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
        unit = self.unit or (self.item.unit if self.item is not None else None)
        unit = f" [{unit}]" if unit else ""
        choices = f" one of {', '.join(map(str, self.choices))}." if self.choices else ""
        default = "" if self.default is REQUIRED else f" Default: {self._shown_default()!r}."
        return f"{self.doc}{unit}{choices}{default}"

    def _shown_default(self):
        """The default in the key's documented unit (defaults are kept internally)."""
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
                    else freeze(key.default)
                continue
            out[name] = _validate(key, data[name], path, base_dir)
        if self.check:
            message = self.check(out)
            if message:
                raise ConfigError(f"{where or 'top level'}: {message}")
        return Settings(out)

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
        result = _quantity(key, value, path)
    elif kind == "ramp":        # a quantity, or [start, end] linearly over the run
        values = value if isinstance(value, list) else [value, value]
        if len(values) != 2:
            raise ConfigError(f"{path}: expected a value or [start, end], got {value!r}")
        result = tuple(_quantity(key, v, path) for v in values)
        for v in result:
            _bounds(key, v, value, path)
        return result
    elif kind == "mapping":     # free-form name -> scalar (e.g. extra INCAR tags)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of names to values, got {value!r}")
        for name, item in value.items():
            if not isinstance(name, str) or isinstance(item, (dict, list)) or item is None:
                raise ConfigError(f"{path}.{name}: expected a number, string or boolean, got "
                                  f"{item!r}")
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                _finite(item, f"{path}.{name}", MAX_INT if isinstance(item, int)
                        else MAX_NUMBER)
        result = Settings(value)
    elif kind in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind == "int" and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{path}: expected {'an integer' if kind == 'int' else 'a number'},"
                              f" got {value!r}")
        _finite(value, path, MAX_INT if kind == "int" else MAX_NUMBER)
        result = int(value) if kind == "int" else float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        result = value
    elif kind in ("str", "path", "folder"):
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        if not value.strip():
            raise ConfigError(f"{path}: empty string ({key.doc})")
        if "\0" in value:
            raise ConfigError(f"{path}: contains a NUL character")
        result = value
        if kind in ("path", "folder"):
            value = os.path.expanduser(value)
            result = value if os.path.isabs(value) else os.path.join(base_dir, value)
            if kind == "path" and not os.path.isfile(result):
                raise ConfigError(f"{path}: file {value!r} not found")
    else:  # pragma: no cover - schema programming error
        raise TypeError(f"unknown key kind {kind!r}")
    if key.choices is not None and result not in key.choices:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, key.choices))}")
    _bounds(key, result, value, path)
    if key.check is not None:
        message = key.check(result)
        if message:
            raise ConfigError(f"{path}: {message}")
    return result


def _finite(value, path: str, limit) -> None:
    """Reject NaN, ±inf and magnitudes above ``limit`` (``value`` an int or float)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: {value!r} is not a finite number")
    if abs(value) > limit:
        raise ConfigError(f"{path}: {value!r} is out of range (magnitude at most {limit:.3g})")


def _quantity(key: Key, value, path: str) -> float:
    """A quantity in internal units, finite and at most MAX_NUMBER in magnitude."""
    if isinstance(value, int) and not isinstance(value, bool):
        _finite(value, path, MAX_NUMBER)      # before float(): huge ints overflow
    try:
        result = parse_quantity(value, key.dimension, key.unit)
    except UnitError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OverflowError:
        raise ConfigError(f"{path}: {value!r} is out of range") from None
    _finite(result, path, MAX_NUMBER)
    return result


def _bounds(key: Key, result, value, path: str) -> None:
    """The key's own minimum and maximum (internal units)."""
    unit = f" {INTERNAL.get(key.dimension, '')}" if key.dimension else ""
    if key.minimum is not None and result < key.minimum:
        raise ConfigError(f"{path}: {value!r} is below the minimum {key.minimum:g}{unit}")
    if key.maximum is not None and result > key.maximum:
        raise ConfigError(f"{path}: {value!r} is above the maximum {key.maximum:g}{unit}")


def validate_file(path, schema: Section, kind: str | None = None) -> dict:
    """Load ``path`` strictly (a file of ``kind``: :func:`load_yaml`) and validate it
    against ``schema``; errors name the file."""
    data = load_yaml(path, kind)
    try:
        return schema.validate(data, base_dir=os.path.dirname(os.path.abspath(path)))
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None
