"""Pure-Python twin of cython_ext/llg.pyx (same signatures, same results)."""
from __future__ import annotations

import numpy as np


def _omega(m, b, alpha, gp):
    return gp * (b + alpha * np.cross(m, b))


def _rotate(m, o, dt):
    w = np.linalg.norm(o, axis=1, keepdims=True)
    safe = np.where(w * dt < 1e-300, 1.0, w)
    u = o / safe
    c, s = np.cos(w * dt), np.sin(w * dt)
    d = np.einsum("ik,ik->i", u, m)[:, None] * (1.0 - c)
    out = m * c + np.cross(u, m) * s + u * d
    return np.where(w * dt < 1e-300, m, out)


def _cayley(m, a):
    a2 = np.einsum("ik,ik->i", a, a)[:, None]
    am = np.einsum("ik,ik->i", a, m)[:, None]
    return ((1.0 - a2) * m + 2.0 * am * a + 2.0 * np.cross(a, m)) / (1.0 + a2)


def _rhs(m, b, alpha, gp):
    t = np.cross(m, b)
    return -gp * (t + alpha * np.cross(m, t))


def _unit(x):
    return x / np.sqrt(np.einsum("ik,ik->i", x, x))[:, None]


def depondt_predict(m, B, bth, alpha, gp, dt, omega, m_pred):
    omega[:] = _omega(m, B + bth, alpha, gp)
    m_pred[:] = _rotate(m, omega, dt)


def depondt_correct(m, omega, m_pred, B, bth, alpha, gp, dt, m_out):
    m_out[:] = _rotate(m, 0.5 * (omega + _omega(m_pred, B + bth, alpha, gp)), dt)


def sib_predict(m, B, bth, alpha, gp, dt, mid):
    mid[:] = _unit(m + _cayley(m, 0.5 * dt * _omega(m, B + bth, alpha, gp)))


def sib_correct(m, mid, B, bth, alpha, gp, dt, m_out):
    m_out[:] = _cayley(m, 0.5 * dt * _omega(mid, B + bth, alpha, gp))


def heun_predict(m, B, bth, alpha, gp, dt, f1, m_pred):
    f1[:] = _rhs(m, B + bth, alpha, gp)
    m_pred[:] = _unit(m + dt * f1)


def heun_correct(m, f1, m_pred, B, bth, alpha, gp, dt, m_out):
    m_out[:] = _unit(m + 0.5 * dt * (f1 + _rhs(m_pred, B + bth, alpha, gp)))
