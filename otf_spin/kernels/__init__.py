"""Kernel dispatch: compiled Cython extension or its pure-Python twin.

Each kernel ``NAME`` exists twice with the same functions and signatures:
``otf_spin._ext.NAME`` (compiled from ``cython_ext/NAME.pyx``) and
``otf_spin.kernels.NAME_py``. :func:`load` returns the compiled one when it was
built, else the twin. Importing this module warns once, naming every kernel that
fell back to its twin (they are 10-100x slower); benchmarks refuse to print speed
rows for twins unless asked (:func:`refuse_twins`). Set ``OTF_SPIN_PURE_PYTHON=1``
to force the twins (debugging, parity checks; no warning then).
"""
from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

KERNELS = ("neighbours", "exchange", "soso", "llg", "noise", "gap", "exchange3b", "dipole2b")
_import_errors: dict[str, str] = {}


def twin(name: str) -> ModuleType:
    """The pure-Python twin of kernel ``name``."""
    return importlib.import_module(f"otf_spin.kernels.{name}_py")


def compiled(name: str, required: bool = False) -> ModuleType | None:
    """The compiled kernel ``name``, or None when the extension was not built
    (``required``: ImportError naming the kernel and the reason instead)."""
    try:
        return importlib.import_module(f"otf_spin._ext.{name}")
    except ImportError as exc:
        _import_errors[name] = str(exc)
        if required:
            raise ImportError(f"compiled kernel otf_spin._ext.{name} is not available "
                              f"({exc}); build it with `python setup.py build_ext "
                              "--inplace` or `pip install -e .`") from None
        return None


def forced_pure() -> bool:
    """True when ``OTF_SPIN_PURE_PYTHON`` asks for the twins."""
    return os.environ.get("OTF_SPIN_PURE_PYTHON", "0") not in ("", "0")


def missing() -> list[str]:
    """Kernels whose compiled extension cannot be imported."""
    return [name for name in KERNELS if compiled(name) is None]


def twins_in_use() -> list[str]:
    """Kernels that :func:`load` serves as pure-Python twins (all when forced)."""
    return list(KERNELS) if forced_pure() else missing()


def refuse_twins(allow: bool = False, what: str = "speed rows") -> list[str]:
    """For benchmarks: SystemExit with a one-line reason when kernels run as twins,
    unless ``allow`` (``--allow-twins``); returns the twins in use."""
    names = twins_in_use()
    if names and not allow:
        raise SystemExit(f"refusing to print {what}: kernel(s) {', '.join(names)} would run "
                         "as pure-Python twins (build the extension: `python setup.py "
                         "build_ext --inplace`), or pass --allow-twins to time them anyway")
    return names


def load(name: str) -> ModuleType:
    """The kernel to use: compiled if available (and not disabled), else the twin."""
    if name not in KERNELS:
        raise KeyError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
    if forced_pure():
        return twin(name)
    module = compiled(name)
    return twin(name) if module is None else module


def _announce() -> None:
    """One warning naming every kernel that fell back to its twin."""
    names = [] if forced_pure() else missing()
    if names:
        reasons = sorted({_import_errors.get(n, "") for n in names} - {""})
        warnings.warn(f"otf-spin: compiled kernel(s) {', '.join(names)} not built; using "
                      "the pure-Python twins (10-100x slower). Build them with `python "
                      "setup.py build_ext --inplace` (or `pip install -e .`) with a C "
                      "compiler" + (f" [{reasons[0]}]" if reasons else "") + ".",
                      RuntimeWarning, stacklevel=3)


_announce()
