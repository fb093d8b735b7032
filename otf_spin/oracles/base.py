"""The oracle contract: a labeller, a :class:`~otf_spin.calculator.Calculator` that runs
a reference calculation (an embedded Hamiltonian, or jobs it writes and reads back).

An oracle labels a :class:`~otf_spin.system.SpinSystem` with its spin directions
held fixed (constrained); ``compute(system, properties=None)`` returns a results dict in
internal units with every property it implements (labels are never partial):

    energy   float, eV, relative to the collinear FM state of the same structure
    fields   (N, 3) eV/μB, transverse effective field -(1/|m_i|)(1 - e_i e_iᵀ) ∂E/∂e_i
    magmoms  (N, 3) μB, moment vectors (magnitudes may be computed, e.g. slaved)
    forces   (N, 3) eV/Å, when the oracle provides them

A failed job raises :class:`OracleFailure` (typed, with the job name and reason).
"""
from __future__ import annotations

from otf_spin.calculator import Calculator
from otf_spin.config.engine import Section

#: oracle settings that name files or limit jobs, not physics: labels made with other
#: values are the same labels
NOT_PHYSICS = ("workdir", "timeout")
#: oracle types whose ``command`` only launches the code (the physics is in their other keys)
LAUNCHER_COMMAND = ("vasp", "qe")


def physics_settings(settings: dict) -> dict:
    """The part of an oracle's :meth:`Oracle.settings` that decides its labels: without
    :data:`NOT_PHYSICS`, nor the launch ``command`` of :data:`LAUNCHER_COMMAND` types."""
    dropped = NOT_PHYSICS + (("command",) if settings.get("type") in LAUNCHER_COMMAND else ())
    return {k: v for k, v in settings.items() if k not in dropped}


class Oracle(Calculator):
    """Base class of reference calculators (labellers); subclasses set the class
    attributes. The dynamics never run on an oracle itself but on its
    :attr:`hamiltonian` where it has one."""

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

    @property
    def default_properties(self) -> tuple[str, ...]:
        return self.implemented_properties

    #: moment magnitude (μB) given to frames that carry only directions, or None
    moment: float | None = None
    #: folder of the oracle's job directories (file-based oracles), or None
    workdir: str | None = None
    #: MPI ranks per job ({ranks} in a launch command), set by the job groups
    ranks: int = 1

    #: the Hamiltonian the dynamics can run on in place of this oracle's jobs (a
    #: :class:`~otf_spin.calculator.Calculator`), or None: an external code (DFT) that
    #: only labels
    hamiltonian = None

    def compute(self, system, properties=None) -> dict:
        """Label ``system``; returns the results dict described in the module doc."""
        raise NotImplementedError

    def settings(self) -> dict:
        """JSON-serialisable description of the settings (provenance)."""
        return {"type": self.name}
