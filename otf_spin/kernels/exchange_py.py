"""Pure-Python twin of cython_ext/exchange.pyx (same signatures, same results)."""
from __future__ import annotations

import numpy as np


def exchange_field(e, s, offsets, neigh, J, h):
    """h_i = Σ_{p in row i} J_p s_{j_p} e_{j_p}; writes h (N, 3) in place."""
    rows = np.repeat(np.arange(len(e)), np.diff(offsets))
    contrib = (J * s[neigh])[:, None] * e[neigh]
    h[:] = 0.0
    np.add.at(h, rows, contrib)


def metropolis_sweep(e, s, offsets, neigh, J, zeeman, beta, sigma, gauss, uniform):
    """One sequential Metropolis sweep, as the compiled kernel; returns #accepted."""
    accepted = 0
    for i in range(len(e)):
        lo, hi = offsets[i], offsets[i + 1]
        js = neigh[lo:hi]
        keep = js != i
        js = js[keep]
        h = ((J[lo:hi][keep] * s[js])[:, None] * e[js]).sum(axis=0)
        trial = e[i] + sigma * gauss[i]
        norm = np.sqrt(trial @ trial)
        if norm == 0.0:
            continue
        trial = trial / norm
        de = -np.dot(2.0 * s[i] * h + zeeman[i], trial - e[i])
        if de <= 0.0 or uniform[i] < np.exp(-beta * de):
            e[i] = trial
            accepted += 1
    return accepted


def exchange_field_plain(e, offsets32, neigh32, J, h0, h):
    """h_i = h0 + Σ_{p in row i} J_p e_{j_p}; writes h (N, 3) in place."""
    exchange_field(e, np.ones(len(e)), offsets32, neigh32, J, h)
    h += h0
