"""otf_spin.kernels.blas_threads: one BLAS thread for the calling thread within the
block, the previous count restored after (numpy's and scipy's bundled OpenBLAS)."""
import os
import subprocess
import sys

CODE = """
import ctypes, glob, os, numpy, scipy
from otf_spin.kernels import blas_threads

assert set(blas_threads._setters()) == {"numpy", "scipy"}, blas_threads._setters()
getters = []
for module, name in ((numpy, "scipy_openblas_get_num_threads64_"),
                     (scipy, "scipy_openblas_get_num_threads")):
    base = os.path.dirname(os.path.dirname(module.__file__))
    path = sorted(glob.glob(os.path.join(base, module.__name__ + ".libs",
                                         "libscipy_openblas*.so*")))[0]
    fn = getattr(ctypes.CDLL(path), name)
    fn.restype = ctypes.c_int
    getters.append(fn)
count = lambda: [fn() for fn in getters]
before = count()
with blas_threads.one_thread():
    inside = count()
    with blas_threads.one_thread(False):
        unchanged = count()
after = count()
assert (before, inside, unchanged, after) == ([2, 2], [1, 1], [1, 1], [2, 2]), \\
    (before, inside, unchanged, after)
assert blas_threads.scipy_setter_address() != 0
"""


def test_one_thread_sets_and_restores():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
