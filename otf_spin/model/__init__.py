"""GAP-SOSO exchange model: kernels, sparse Bayesian GPR, settings, model files."""
from otf_spin.config.model import default_settings
from otf_spin.model.factory import build_model
from otf_spin.model.gpr import AliasingWarning, SparseGPR

__all__ = ["SparseGPR", "build_model", "default_settings", "AliasingWarning", "load"]


def load(path) -> SparseGPR:
    """Load a model file written by :meth:`SparseGPR.save`."""
    return SparseGPR.load(path)
