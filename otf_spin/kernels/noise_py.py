"""Pure-Python twin of cython_ext/noise.pyx (same algorithm, same variates)."""
from __future__ import annotations

import math

import numpy as np

R_TAIL = 3.6541528853610088
V_AREA = 0.00492867323399
TWO52 = 4503599627370496.0


def tables():
    """(ki, wi, fi) of the 256-layer ziggurat (Marsaglia & Tsang 2000's setup) with
    52-bit integer comparisons; shared by the compiled kernel."""
    ki = np.zeros(256, np.uint64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    dn = tn = R_TAIL
    q = V_AREA / np.exp(-0.5 * dn * dn)
    ki[0] = np.uint64((dn / q) * TWO52)
    wi[0], wi[255] = q / TWO52, dn / TWO52
    fi[0], fi[255] = 1.0, np.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = np.sqrt(-2.0 * np.log(V_AREA / dn + np.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64((dn / tn) * TWO52)
        tn = dn
        fi[i] = np.exp(-0.5 * dn * dn)
        wi[i] = dn / TWO52
    return ki, wi, fi


KI, WI, FI = tables()
KI = [int(k) for k in KI]


def _uniform(r: int) -> float:
    return ((r >> 11) + 0.5) * (1.0 / 9007199254740992.0)


def _split(r: int):
    idx = r & 0xFF
    r >>= 8
    sign = r & 1
    rabs = (r >> 1) & 0x000FFFFFFFFFFFFF
    x = rabs * WI[idx]
    return idx, sign, rabs, (-x if sign else x)


def gaussian_fill(raw, reserve, out):
    """As the compiled kernel: returns (filled, reserve_used)."""
    k, m = 0, len(reserve)
    for i in range(len(out)):
        idx, sign, rabs, x = _split(int(raw[i]))
        if rabs < KI[idx]:
            out[i] = x
            continue
        while True:
            if idx == 0:
                while True:
                    if k + 2 > m:
                        return i, k
                    xx = -math.log1p(-_uniform(int(reserve[k]))) / R_TAIL
                    y = -math.log1p(-_uniform(int(reserve[k + 1])))
                    k += 2
                    if y + y > xx * xx:
                        break
                out[i] = -(R_TAIL + xx) if sign else R_TAIL + xx
                break
            if k + 1 > m:
                return i, k
            u = _uniform(int(reserve[k]))
            k += 1
            if (FI[idx - 1] - FI[idx]) * u + FI[idx] < math.exp(-0.5 * x * x):
                out[i] = x
                break
            if k + 1 > m:
                return i, k
            idx, sign, rabs, x = _split(int(reserve[k]))
            k += 1
            if rabs < KI[idx]:
                out[i] = x
                break
    return len(out), k
