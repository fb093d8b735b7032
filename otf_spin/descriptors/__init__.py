"""Spin descriptors (paper Table II) with analytic spin and position derivatives:
exchange-2b SOSO (Sec. II C), exchange-3b (Appendix A), dipole-2b (Sec. II D), exchange-2b on
a cubic B-spline radial basis, exchange-2b in the angle between spins, and their
concatenation."""
from otf_spin.descriptors.angle2b import AngleExchangeDescriptor
from otf_spin.descriptors.composite import CompositeDescriptor
from otf_spin.descriptors.dipole2b import Dipole2BDescriptor
from otf_spin.descriptors.exchange3b import Exchange3BDescriptor
from otf_spin.descriptors.soso import RadialPairs, SOSODescriptor, spin_weights
from otf_spin.descriptors.spline2b import SplineExchangeDescriptor

__all__ = ["SOSODescriptor", "Exchange3BDescriptor", "Dipole2BDescriptor",
           "CompositeDescriptor", "SplineExchangeDescriptor", "AngleExchangeDescriptor",
           "RadialPairs", "spin_weights"]
