"""Gaussian noise for the thermal field, drawn from the run's numpy Generator.

Raw 64-bit draws (``bit_generator.random_raw``) go through a compiled ziggurat
(cython_ext/noise.pyx): about twice as fast as ``Generator.standard_normal`` for the
3N variates of every LLG step, and still one seeded stream that is saved and restored
with the Generator (bit-exact restarts).
"""
from __future__ import annotations

import numpy as np

from otf_spin.kernels import load as load_kernel


def standard_normal(rng: np.random.Generator, out: np.ndarray, kernel=None) -> np.ndarray:
    """Fill the contiguous array ``out`` with N(0, 1) variates from ``rng``."""
    kernel = kernel or load_kernel("noise")
    flat = out.reshape(-1)
    n = len(flat)
    raw = rng.bit_generator.random_raw(n)
    done = 0
    while done < n:
        reserve = rng.bit_generator.random_raw(max(64, (n - done) // 16))
        filled, _ = kernel.gaussian_fill(raw[done:], reserve, flat[done:])
        done += filled
    return out
