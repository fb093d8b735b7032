"""One BLAS thread for small linear algebra, for the calling thread only.

OpenBLAS threads every level-3 call above ~2.6e5 multiply-adds; on the small matrices of
a fit (QR factors of a few hundred columns) or of a 54-atom prediction the hand-over to
its threads costs more than the arithmetic, and on a busy machine (threads waiting for
a core) milliseconds per call: the README's 16-spin on-the-fly run spent 38 of its
40 CPU seconds in threaded QRs of ~80 columns with two cores and other jobs.

The wheels of numpy and scipy each bundle their own OpenBLAS (``numpy.libs``,
``scipy.libs``); both export ``openblas_set_num_threads_local`` (OpenBLAS ≥ 0.3.27),
which changes the thread count of the calling thread only. Other BLAS libraries (MKL,
a system OpenBLAS without it) are left alone: :func:`one_thread` is then a no-op.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os

#: atoms: predictions of smaller systems run on one BLAS thread (as the compiled
#: kernels run their loops on one below the same size)
SERIAL_BELOW = 512
_SETTERS: dict | None = None


def _setters() -> dict:
    """{"numpy": fn, "scipy": fn} for the bundled OpenBLAS libraries found (ctypes
    functions int(int)); found once."""
    global _SETTERS
    if _SETTERS is None:
        _SETTERS = {}
        for package in ("numpy", "scipy"):
            try:
                module = __import__(package)
            except ImportError:
                continue
            base = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))
            for path in sorted(glob.glob(os.path.join(base, f"{package}.libs",
                                                      "libscipy_openblas*.so*"))):
                try:
                    fn = ctypes.CDLL(path).openblas_set_num_threads_local
                except (OSError, AttributeError):
                    continue
                fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
                _SETTERS[package] = fn
                break
    return _SETTERS


def scipy_setter_address() -> int:
    """Address of scipy's OpenBLAS ``openblas_set_num_threads_local`` (the library
    behind ``scipy.linalg.cython_blas``), 0 if not found: for compiled kernels."""
    fn = _setters().get("scipy")
    return 0 if fn is None else ctypes.cast(fn, ctypes.c_void_p).value


@contextlib.contextmanager
def one_thread(enabled: bool = True):
    """Within the block, numpy's and scipy's OpenBLAS run the calling thread's calls on
    one thread (``enabled`` False: no change)."""
    setters = list(_setters().values()) if enabled else []
    previous = [fn(1) for fn in setters]
    try:
        yield
    finally:
        for fn, value in zip(setters, previous):
            fn(value)


def single_threaded(method):
    """Decorator: run ``method`` inside :func:`one_thread`."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with one_thread():
            return method(*args, **kwargs)
    return wrapper
