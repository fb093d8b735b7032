"""The replica layout of a run (schema of the ``replicas`` section: :mod:`otf_spin.config.replicas`).

    replicas:
      temperatures: [300, 500, 700, 900]   # K: one replica each (or give seeds:)
      exchange_every: 100                  # parallel tempering every 100 steps (0: off)

Replica r runs at ``temperatures[r]`` (else at ``dynamics.temperature``, a ramp allowed)
with the random stream ``seeds[r]`` (default ``dynamics.seed + r``), on the rank that owns
it in a contiguous block layout (:func:`otf_spin.parallel.comm.owned`). Nothing a replica
computes depends on where it runs, so results are the same on any number of ranks. Each
replica writes its own H5MD file: ``run.h5`` becomes ``run.r000.h5``, ``run.r001.h5``, ...
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicaSpec:
    """Index, temperature ramp (K, K), seed and trajectory file of one replica."""

    index: int
    temperature: tuple
    seed: int
    trajectory: str


def layout(cfg: dict) -> list[ReplicaSpec]:
    """All replicas of a validated run configuration (one without ``replicas``)."""
    dyn, replicas, path = cfg["dynamics"], cfg.get("replicas"), cfg["output"]["trajectory"]
    if not replicas:
        return [ReplicaSpec(0, tuple(dyn["temperature"]), dyn["seed"], path)]
    n = len(replicas["temperatures"] or replicas["seeds"])
    stem, suffix = os.path.splitext(path)
    return [ReplicaSpec(r, (replicas["temperatures"][r],) * 2 if replicas["temperatures"]
                        else tuple(dyn["temperature"]),
                        replicas["seeds"][r] if replicas["seeds"] else dyn["seed"] + r,
                        f"{stem}.r{r:03d}{suffix}") for r in range(n)]
