"""Kernel dispatch: compiled Cython extension or its pure-Python twin.

Each kernel ``NAME`` exists twice with the same functions and signatures:
``otf_spin._ext.NAME`` (compiled from ``cython_ext/NAME.pyx``) and
``otf_spin.kernels.NAME_py``. :func:`load` returns the compiled one when it was
built, else the twin (with one warning). Set ``OTF_SPIN_PURE_PYTHON=1`` to force
the twins (debugging, parity checks).
"""
from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

KERNELS = ("neighbours", "exchange", "soso", "llg", "noise")
_warned: set[str] = set()


def twin(name: str) -> ModuleType:
    """The pure-Python twin of kernel ``name``."""
    return importlib.import_module(f"otf_spin.kernels.{name}_py")


def compiled(name: str) -> ModuleType | None:
    """The compiled kernel ``name``, or None when the extension was not built."""
    try:
        return importlib.import_module(f"otf_spin._ext.{name}")
    except ImportError:
        return None


def load(name: str) -> ModuleType:
    """The kernel to use: compiled if available (and not disabled), else the twin."""
    if name not in KERNELS:
        raise KeyError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
    if os.environ.get("OTF_SPIN_PURE_PYTHON", "0") not in ("", "0"):
        return twin(name)
    module = compiled(name)
    if module is None:
        if name not in _warned:
            _warned.add(name)
            warnings.warn(f"compiled kernel otf_spin._ext.{name} is not built; using the "
                          "pure-Python twin (slow). Reinstall with `pip install -e .`.",
                          RuntimeWarning, stacklevel=2)
        return twin(name)
    return module
