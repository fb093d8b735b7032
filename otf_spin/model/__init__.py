"""GAP-SOSO exchange model: covariances, sparse Bayesian GPR, factory, model files."""
from otf_spin.config.model import default_settings
from otf_spin.model.factory import build_model
from otf_spin.model.gpr import AliasingWarning, SparseGPR
from otf_spin.model import storage
from otf_spin.model.storage import save

__all__ = ["SparseGPR", "build_model", "default_settings", "AliasingWarning", "load", "save"]


def load(path) -> SparseGPR:
    """Load a model file written by :func:`save` (:mod:`otf_spin.model.storage`)."""
    return storage.load(path)[0]
