"""The run driver: replicas advanced step by step, observers notified.

A **propagator** moves a state object, in the manner of JAX-MD's ``init_fn``/``apply_fn``:
:class:`~otf_spin.dynamics.llg.LLGIntegrator` (LLG, time in ps) and the Metropolis
samplers of :mod:`otf_spin.dynamics.montecarlo` (time in sweeps) both have

    init(system, seed) -> state           a fresh state from the system's directions
    advance(state, provider, T) -> state  one step (one sweep) at temperature T (K)
    time(state) -> float                  in ``time_unit``

and a **provider** (:mod:`otf_spin.dynamics.providers`) gives fields and energies. An
**observer** has one hook, ``notify(step)``: the driver calls it after the replicas
reached ``step`` (writer, logger, checkpointer, tempering), or — for an observer with
``before_step = True``, the on-the-fly learner, which decides the model a step runs on —
before they advance from ``step``. One replica and an ensemble take the same path: the
driver advances every replica of this rank; the observers do the collective work.

The order of a run (``first`` = 0, or the checkpointed step on resume)::

    initial:     before-observers(0), after-observers(0)
    each step s = first+1 … steps:
                 before-observers(s-1) unless s-1 = 0 (done above) ; advance every replica ;
                 kill point "step" ; after-observers(s), in their list order
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from otf_spin.io.atomic import kill_point
from otf_spin.parallel import world
from otf_spin.progress import progress_bar


@dataclass
class Session:
    """Where a command runs: its communicator, whether this rank is the root, and the
    log (rank 0's ``log`` or standard output; a null sink on the other ranks)."""

    comm: object
    root: bool
    log: object

    @classmethod
    def open(cls, comm=None, log=None) -> "Session":
        """The session of ``comm`` (default :func:`otf_spin.parallel.world`)."""
        comm = comm or world()
        root = comm.rank == 0
        return cls(comm, root, (log or sys.stdout) if root else open(os.devnull, "w"))


@dataclass
class Replica:
    """One replica on this rank: its spec (:class:`otf_spin.parallel.replicas.ReplicaSpec`),
    system, field provider, propagator and state, trajectory writer, and the largest
    field σ (eV/μB) of its last on-the-fly check."""

    spec: object
    system: object
    provider: object = None
    propagator: object = None
    state: object = None
    writer: object = None
    max_std: float = float("nan")

    def temperature(self, step: int, steps: int) -> float:
        """The linear ramp of the replica's temperatures at ``step`` of ``steps`` (K)."""
        t0, t1 = self.spec.temperature
        return t0 + (t1 - t0) * step / max(steps, 1)

    def time(self) -> float:
        """Time of the replica's state in its propagator's ``time_unit``."""
        return self.propagator.time(self.state)

    def advance(self, step: int, steps: int) -> None:
        """Advance the state by one step, at the temperature of ``step - 1``."""
        self.propagator.advance(self.state, self.provider, self.temperature(step - 1, steps))


class Observer:
    """Base of the observers: one hook, :meth:`notify`, at every step."""

    #: True: notified before the replicas advance from the step; False: after they reach it
    before_step = False
    #: the part of the run's wall time its notifications count to (:func:`drive`'s
    #: return), or None: counted with the dynamics
    timing: str | None = None

    def notify(self, step: int) -> None:
        raise NotImplementedError


def drive(replicas, observers, first: int, steps: int, initial: bool,
          progress: bool = False) -> dict:
    """Advance ``replicas`` from step ``first`` to ``steps``, notifying ``observers`` (in
    list order within each phase) as the module doc describes; ``initial``: the
    replicas are at their initial step 0 (not resumed), observed before any step.
    Returns the wall time (s) of the notifications of each observer ``timing``."""
    before = [o for o in observers if o.before_step]
    after = [o for o in observers if not o.before_step]
    spent = {o.timing: 0.0 for o in observers if o.timing}

    def notify(group, step):
        for observer in group:
            if observer.timing:
                start = time.perf_counter()
                observer.notify(step)
                spent[observer.timing] += time.perf_counter() - start
            else:
                observer.notify(step)

    if initial:
        notify(before + after, 0)
    for step in progress_bar(range(first + 1, steps + 1), "run", enabled=progress):
        if step > 1:
            notify(before, step - 1)
        for replica in replicas:
            replica.advance(step, steps)
        kill_point("step")
        notify(after, step)
    return spent
