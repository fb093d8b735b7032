"""The oracle (reference calculator) contract, after ASE's calculators.

An oracle labels a :class:`~otf_spin.system.SpinSystem` with its spin directions
held fixed (constrained) and returns a results dict in internal units:

    energy   float, eV, relative to the collinear FM state of the same structure
    fields   (N, 3) eV/μB, transverse effective field -(1/|m_i|)(1 - e_i e_iᵀ) ∂E/∂e_i
    magmoms  (N, 3) μB, moment vectors (magnitudes may be computed, e.g. slaved)
    forces   (N, 3) eV/Å, when the oracle provides them

A failed job raises :class:`OracleFailure` (typed, with the job name and reason).
"""
from __future__ import annotations

from otf_spin.config.engine import Section


class Oracle:
    """Base class of reference calculators; subclasses set the class attributes."""

    #: entry-point name and ``type:`` value in YAML
    name: str = ""
    #: properties this oracle returns (immutable: never extend an inherited list)
    implemented_properties: tuple[str, ...] = ()
    #: schema of the YAML block (without the ``type`` key)
    schema: Section = Section({})

    @classmethod
    def from_config(cls, block: dict, context: dict | None = None) -> "Oracle":
        """Build from a validated YAML block (internal units); ``context`` carries
        run-level facts such as the system's lattice constant ``a`` (Å)."""
        raise NotImplementedError

    def compute(self, system) -> dict:
        """Label ``system``; returns the results dict described in the module doc."""
        raise NotImplementedError

    def settings(self) -> dict:
        """JSON-serialisable description of the settings (provenance)."""
        return {"type": self.name}
