"""Labelling configurations with an oracle, over the rank groups, reusing the store.

Shared by the on-the-fly learner and ``otf-spin generate``: a job is retried on
:class:`~otf_spin.core.OracleFailure` (exit status, timeout, NaN, parse error) and
skipped with a logged reason after the last retry; the labelled frame keeps the probe's
directions exactly (the oracle's moment magnitudes are adopted) and carries its provenance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from otf_spin.core import Frame, OracleFailure
from otf_spin.learning.store import spool_folder, spool_label
from otf_spin.oracles import file_digests


@dataclass
class Outcome:
    """What labelling one probe produced: ``labelled`` is (Frame, provenance) or None when
    every attempt failed; ``messages`` are log lines; ``seconds`` is oracle wall time;
    ``error`` the last :class:`~otf_spin.core.OracleFailure` (None if there was none)."""

    labelled: tuple | None
    messages: list = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0
    error: OracleFailure | None = None
    spooled: bool = False       # the label of an interrupted batch, from the spool


def label_with_retries(oracle, probe, retries: int, rank: int = 0) -> Outcome:
    """Run ``oracle`` on ``probe`` (a SpinSystem), at most ``retries + 1`` times."""
    outcome = Outcome(None)
    for attempt in range(retries + 1):
        start = time.perf_counter()
        try:
            results = oracle.compute(probe.copy())
        except OracleFailure as exc:
            outcome.seconds += time.perf_counter() - start
            outcome.failures += 1
            outcome.error = exc
            outcome.messages.append(f"# oracle failure (attempt {attempt + 1}, rank {rank}): "
                                    f"{exc}")
            continue
        wall = time.perf_counter() - start
        outcome.seconds += wall
        labelled = probe.copy()
        if "magmoms" in results:
            labelled.magnitudes = np.linalg.norm(results["magmoms"], axis=1)
        labels = {k: results[k] for k in ("energy", "fields", "forces") if k in results}
        info = results.get("info", {})
        settings = oracle.settings()
        provenance = {"oracle": oracle.name, "settings": settings,
                      "files": file_digests(settings),
                      "job_directory": info.get("job_directory"),
                      "wall_time": info.get("wall_time", wall), "rank": rank}
        outcome.labelled = (Frame(labelled, labels), provenance)
        return outcome
    outcome.messages.append("# oracle job skipped after retries; continuing without its label")
    return outcome


def label_collective(probes, oracle, store, jobs, retries: int, keep=None) -> list | None:
    """Collective over ``jobs.comm``: label every probe not already in ``store`` (read on
    rank 0 only) on the rank groups of ``jobs``
    (:class:`~otf_spin.parallel.jobs.JobGroups`). Returns on rank 0 one :class:`Outcome`
    per probe — a stored configuration comes back as (stored Frame, None) without an
    oracle call — and None on the other ranks.

    ``keep(k, outcome)``, if given, is called on rank 0 once per newly labelled probe k,
    in probe order, as soon as rank 0 has that outcome and all before it: with one rank
    group right after each job (an interrupted run keeps every label it paid for); with
    several, rank 0's own jobs as long as they continue the order, the rest after the
    gather (the store's order does not depend on the number of ranks). With ``keep`` and
    several groups, the other groups' labels also go to the store's spool folder as they
    are made (:func:`~otf_spin.learning.store.spool_label`): a probe found there, left by
    an interrupted batch, is kept from it (``Outcome.spooled``) instead of labelled
    again, and rank 0 empties the spool once the batch is kept."""
    comm = jobs.comm
    root = comm.rank == 0
    spool = comm.bcast(spool_folder(store.path) if root and keep is not None
                       and jobs.n_groups > 1 else None)
    stored = [store.lookup(p) for p in probes] if root else None
    settings = oracle.settings() if root and spool else None
    spooled = {k: store.spooled(p, settings) for k, p in enumerate(probes)
               if stored[k] is None} if settings is not None else {}
    fresh = [k for k in range(len(probes)) if stored[k] is None] if root else None
    pending = comm.bcast(None if not root else
                         [k for k in fresh if spooled.get(k) is None])
    ready = {k: Outcome(s, spooled=True) for k, s in spooled.items() if s is not None}
    order = iter(fresh or ())
    waiting = next(order, None)         # the next probe to keep (rank 0)

    def kept_in_order():
        nonlocal waiting
        while waiting is not None and waiting in ready:
            keep(waiting, ready[waiting])
            waiting = next(order, None)

    def label(k):
        outcome = label_with_retries(oracle, probes[k], retries, comm.rank)
        if root and keep is not None:
            ready[k] = outcome
            kept_in_order()
        elif spool and outcome.labelled is not None:
            spool_label(spool, *outcome.labelled)
        return outcome

    if root and keep is not None:
        kept_in_order()
    outcomes = jobs.map(label, pending)
    if not root:
        return None
    results = [Outcome((s, None)) if s is not None else ready.get(k)
               for k, s in enumerate(stored)]
    for k, outcome in zip(pending, outcomes):
        ready[k] = results[k] = outcome
    if keep is not None:
        kept_in_order()
    if spool:
        store.clear_spool()
    return results
