"""The ``replicas`` section of a run file and the replica layout.

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

from otf_spin.io.config import Key, Section


def _check(values: dict) -> str | None:
    temperatures, seeds = values["temperatures"], values["seeds"]
    if temperatures is None and seeds is None:
        return "give temperatures or seeds (one replica each)"
    if temperatures is not None and seeds is not None and len(temperatures) != len(seeds):
        return (f"seeds: {len(seeds)} seeds for {len(temperatures)} temperatures "
                "(one replica each: the lengths must agree)")
    if values["exchange_every"]:
        if temperatures is None or len(temperatures) < 2:
            return "exchange_every: parallel tempering needs two or more temperatures"
        if any(b <= a for a, b in zip(temperatures, temperatures[1:])):
            return "temperatures: parallel tempering needs strictly increasing temperatures"
    return None


SCHEMA = Section({
    "temperatures": Key("list", "one replica per temperature", None,
                        item=Key("quantity", "temperature", unit="K", dimension="temperature",
                                 minimum=0.0)),
    "seeds": Key("list", "one replica per seed (default: dynamics.seed + replica index)",
                 None, item=Key("int", "seed", minimum=0)),
    "exchange_every": Key("int", "parallel tempering: attempt swaps of neighbouring "
                          "temperatures every N steps (0: off)", 0, minimum=0),
    "ranks_per_oracle_job": Key("int", "ranks per oracle job (on-the-fly runs): the ranks "
                                "are split into groups of this size, each group leader "
                                "launches one job at a time and the command gets {ranks}",
                                1, minimum=1),
}, "replicas (run under mpirun -n R for R ranks; any number of replicas per rank)",
    check=_check)


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
