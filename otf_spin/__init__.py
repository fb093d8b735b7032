"""otf-spin: on-the-fly machine-learned atomistic spin dynamics.

Internal units everywhere (see :mod:`otf_spin.units`): Å, eV, ps, K, μB, tesla.
"""
__version__ = "0.1.0"

from otf_spin.parallel.comm import share_cores  # noqa: E402

share_cores()   # OMP_NUM_THREADS per MPI rank, before the compiled kernels load OpenMP

from otf_spin.system import SpinSystem  # noqa: E402

__all__ = ["SpinSystem", "__version__"]
