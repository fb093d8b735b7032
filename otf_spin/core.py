"""Core data types and errors: what every module may import; imports nothing of the package.

Errors (each ``str(err)`` is a one-line message naming the file, key or atom):

    ConfigError          invalid YAML configuration (file and dotted key)
    UnitError            unknown unit, or a unit of the wrong dimension
    DataFileError        a data file is missing, unreadable or breaks the data contract
    NonFiniteError       a label is NaN or infinite (a DataFileError)
    InvalidSystemError   an unphysical structure or moments
    MemoryLimitError     a requested size does not fit the available memory
    OracleFailure        an oracle job failed (typed: ``kind``, ``job``, ``reason``)
    PlotError            a plot cannot be made

Data: :class:`Frame`, one configuration (a :class:`~otf_spin.system.SpinSystem`) with its
labels in internal units.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """Invalid configuration; ``str(err)`` is a one-line message naming file and key."""


class UnitError(ValueError):
    """A quantity carries an unknown unit or a unit of the wrong dimension."""


class DataFileError(ValueError):
    """A data file is missing, unreadable or breaks the data contract."""


class NonFiniteError(DataFileError):
    """A label (energy, fields, forces) is NaN or infinite."""


class InvalidSystemError(ValueError):
    """A structure or its moments are unphysical; the message names the place and atom."""


class MemoryLimitError(ValueError):
    """A requested size does not fit the available memory (checked before allocating)."""


class OracleFailure(RuntimeError):
    """An oracle job failed: non-zero exit, timeout, NaN, no convergence, ...

    ``kind`` is one of 'exit', 'timeout', 'nan', 'convergence', 'parse', 'other'.
    """

    def __init__(self, job: str, kind: str, reason: str):
        super().__init__(f"oracle job {job}: {kind}: {reason}")
        self.job, self.kind, self.reason = job, kind, reason

    def __reduce__(self):       # pickled as its three parts (MPI gathers of outcomes)
        return type(self), (self.job, self.kind, self.reason)


class PlotError(ValueError):
    """A one-line reason why a plot cannot be made (missing matplotlib, wrong file)."""


@dataclass
class Frame:
    """One configuration and its labels (``results``: energy, fields, ... in internal units)."""

    system: Any                 # otf_spin.system.SpinSystem
    results: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def energy(self):
        return self.results.get("energy")

    @property
    def fields(self):
        return self.results.get("fields")
