"""Spin descriptors: exchange-2b SOSO (paper Sec. II C) with analytic derivatives."""
from otf_spin.descriptors.soso import SOSODescriptor, spin_weights

__all__ = ["SOSODescriptor", "spin_weights"]
