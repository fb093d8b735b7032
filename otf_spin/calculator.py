"""The calculator contract, after ASE's: ``compute(system, properties) -> results``.

Every object that turns a :class:`~otf_spin.system.SpinSystem` into numbers — the fitted
model (:class:`~otf_spin.model.gpr.SparseGPR`), the Heisenberg Hamiltonian
(:class:`~otf_spin.oracles.heisenberg.HeisenbergHamiltonian`) and the oracles (labellers,
:class:`~otf_spin.oracles.base.Oracle`) — declares the properties it can return in
``implemented_properties`` and returns a results dict holding at least the ones asked
for (it may return more, as ASE's calculators do). Names and units (internal units,
:mod:`otf_spin.units`):

    energy                float, eV, relative to the collinear FM state of the structure
    energies              (N,) eV, local energies (models)
    fields                (N, 3) eV/μB, transverse effective field -(1/|m_i|)(1 - e eᵀ) ∂E/∂e_i
    magmoms               (N, 3) μB, moment vectors (magnitudes may be computed, e.g. slaved)
    forces                (N, 3) eV/Å
    energy_std            float, eV, predictive std of the energy (models)
    fields_std            (N, 3) eV/μB, predictive std of each field component (models)
    fields_std_epistemic  (N, 3) eV/μB, its posterior part alone (what a label can reduce)

Asking for a property a calculator does not implement raises
:class:`PropertyNotImplementedError` before anything is computed: dispatch is by these
declarations, never by probing attributes. Nothing here imports the rest of the package.
"""
from __future__ import annotations

ENERGY, ENERGIES, FIELDS, MAGMOMS, FORCES = "energy", "energies", "fields", "magmoms", "forces"
ENERGY_STD, FIELDS_STD, FIELDS_STD_EPISTEMIC = "energy_std", "fields_std", "fields_std_epistemic"
#: the uncertainty properties (a model computes them only when asked)
STD_PROPERTIES = (ENERGY_STD, FIELDS_STD, FIELDS_STD_EPISTEMIC)
#: every property name of the contract
ALL_PROPERTIES = (ENERGY, ENERGIES, FIELDS, MAGMOMS, FORCES) + STD_PROPERTIES


class PropertyNotImplementedError(NotImplementedError):
    """A calculator was asked for a property outside its ``implemented_properties``."""


class Calculator:
    """Base of everything with ``compute(system, properties)``; subclasses set
    ``implemented_properties`` (an immutable tuple: never extend an inherited one in
    place) and implement :meth:`compute`."""

    #: properties this calculator can return
    implemented_properties: tuple[str, ...] = ()
    #: what ``compute(system)`` returns when no properties are named
    default_properties: tuple[str, ...] = (ENERGY, FIELDS)

    def check_properties(self, properties) -> tuple[str, ...]:
        """``properties`` as a tuple (None: :attr:`default_properties`); raise
        :class:`PropertyNotImplementedError` naming any this calculator lacks."""
        wanted = self.default_properties if properties is None else tuple(properties)
        missing = [p for p in wanted if p not in self.implemented_properties]
        if missing:
            raise PropertyNotImplementedError(
                f"{type(self).__name__} does not compute {', '.join(missing)} (it implements "
                f"{', '.join(self.implemented_properties) or 'nothing'})")
        return wanted

    def compute(self, system, properties=None) -> dict:
        """Results dict for ``system`` holding at least ``properties`` (names above)."""
        raise NotImplementedError
