"""Schema of the ``replicas`` section of a run file (layout: :mod:`otf_spin.parallel.replicas`)."""
from __future__ import annotations

from otf_spin.config.engine import Key, Section


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


REPLICAS = Section({
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
