"""Physical constants and unit conversions: the one place where units live.

Internal units (everywhere inside otf-spin)::

    length        Å
    energy        eV
    time          ps
    temperature   K
    moment        μB
    LLG field     T          (tesla)
    data field    eV/μB      (transverse effective field of the data contract)

Constants are CODATA 2018 values. Convert only at the boundaries (YAML input,
foreign file formats); :func:`parse_quantity` turns "0.1 fs" or "1.2 mRy" into
the internal unit of a YAML key and rejects a unit of the wrong dimension.
"""
from __future__ import annotations

import re

from otf_spin.core import UnitError

# --- constants (CODATA 2018) -------------------------------------------------
MU_B = 5.7883818060e-5        #: Bohr magneton, eV/T
GAMMA = 0.1760859630          #: electron gyromagnetic ratio, rad/(ps·T)
K_B = 8.617333262e-5          #: Boltzmann constant, eV/K
RYDBERG = 13.605693122994     #: Rydberg energy, eV
HARTREE = 2 * RYDBERG         #: Hartree energy, eV
BOHR = 0.529177210903         #: Bohr radius, Å
ELEMENTARY_CHARGE = 1.602176634e-19   #: C (J per eV)
MU0_OVER_4PI = 1.00000000055e-7       #: vacuum permeability / 4π, T·m/A
#: dipolar energy scale (μ0/4π) μB² / Å³ in eV (≈ 5.37e-5 eV = 0.0537 meV)
DIPOLAR_EV = MU0_OVER_4PI * MU_B**2 * ELEMENTARY_CHARGE * 1e30

# --- conversion factors to internal units --------------------------------------
MEV = 1e-3                    #: meV -> eV
MRY = RYDBERG * 1e-3          #: mRy -> eV (UppASD exchange constants)
FS = 1e-3                     #: fs -> ps
FIELD_EV_PER_MUB_TO_T = 1.0 / MU_B   #: eV/μB -> T (data field to LLG field)


def field_to_tesla(field_ev_per_mub):
    """Transverse field in eV/μB (data contract) -> LLG field in T."""
    return field_ev_per_mub * FIELD_EV_PER_MUB_TO_T


def tesla_to_field(b_tesla):
    """LLG field in T -> eV/μB."""
    return b_tesla * MU_B


#: units accepted at the YAML boundary: name -> (dimension, factor to internal unit)
UNITS: dict[str, tuple[str, float]] = {
    # length (internal Å)
    "angstrom": ("length", 1.0), "Å": ("length", 1.0), "A": ("length", 1.0),
    "Ang": ("length", 1.0), "nm": ("length", 10.0), "bohr": ("length", BOHR),
    # energy (internal eV)
    "eV": ("energy", 1.0), "meV": ("energy", MEV), "Ry": ("energy", RYDBERG),
    "mRy": ("energy", MRY), "Ha": ("energy", HARTREE),
    # time (internal ps)
    "ps": ("time", 1.0), "fs": ("time", FS), "ns": ("time", 1e3), "as": ("time", 1e-6),
    # temperature
    "K": ("temperature", 1.0),
    # magnetic moment
    "muB": ("moment", 1.0), "μB": ("moment", 1.0), "mu_B": ("moment", 1.0),
    # LLG field (internal T)
    "T": ("field", 1.0), "mT": ("field", 1e-3),
    # data field (internal eV/μB)
    "eV/muB": ("data_field", 1.0), "eV/μB": ("data_field", 1.0),
    "meV/muB": ("data_field", MEV), "meV/μB": ("data_field", MEV),
    # wall-clock time of jobs (internal s; not simulation time)
    "s": ("walltime", 1.0), "min": ("walltime", 60.0), "h": ("walltime", 3600.0),
    # angle (internal rad)
    "deg": ("angle", 0.017453292519943295), "rad": ("angle", 1.0),
    # energy per volume-like constant of Eq. 43, c in eV·Å³
    "eV*Å^3": ("energy_volume", 1.0), "eV*A^3": ("energy_volume", 1.0),
    "eV*angstrom^3": ("energy_volume", 1.0),
}

#: internal unit name of each dimension (for messages and docs)
INTERNAL = {
    "length": "Å", "energy": "eV", "time": "ps", "temperature": "K", "moment": "μB",
    "field": "T", "data_field": "eV/μB", "angle": "rad", "energy_volume": "eV·Å³",
    "walltime": "s",
}

_QUANTITY = re.compile(r"^\s*([-+0-9.eE]+)\s*([^\s].*?)?\s*$")


def parse_quantity(value, dimension: str, default_unit: str):
    """Convert a number or a "number unit" string to the internal unit of ``dimension``.

    A bare number is taken in ``default_unit`` (the unit the YAML key documents).
    Raises :class:`UnitError` for unknown units or units of another dimension.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), default_unit
    elif isinstance(value, str):
        match = _QUANTITY.match(value)
        if not match:
            raise UnitError(f"cannot read {value!r} as 'number unit'")
        try:
            number = float(match.group(1))
        except ValueError:
            raise UnitError(f"cannot read {value!r} as 'number unit'") from None
        unit = match.group(2) or default_unit
    else:
        raise UnitError(f"expected a number or 'number unit', got {type(value).__name__}")
    unit = unit.replace("\u00b5", "\u03bc").replace("\u212b", "\u00c5")  # µ (micro sign), Å (ångström sign)
    if unit not in UNITS:
        raise UnitError(f"unknown unit {unit!r} (expected {_a(dimension)} unit such as "
                        f"{default_unit!r})")
    unit_dimension, factor = UNITS[unit]
    if unit_dimension != dimension:
        raise UnitError(f"unit {unit!r} is {_a(unit_dimension)} unit, expected "
                        f"{_name(dimension)} (e.g. {default_unit!r})")
    return number * factor


#: words for the dimensions whose key is not one
_NAMES = {"data_field": "transverse field (eV/μB)", "field": "magnetic field (T)",
          "walltime": "wall-clock time", "energy_volume": "energy × volume"}


def _name(dimension: str) -> str:
    return _NAMES.get(dimension, dimension)


def _a(dimension: str) -> str:
    """The dimension's words with their article ("an energy", "a length")."""
    name = _name(dimension)
    return ("an " if name[0] in "aeiou" else "a ") + name
