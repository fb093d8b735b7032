"""Build a model from validated model settings (:mod:`otf_spin.config.model`)."""
from __future__ import annotations

from otf_spin.config.model import VARIANCE_SPARSE, default_settings
from otf_spin.core import ConfigError
from otf_spin.descriptors import (AngleExchangeDescriptor, CompositeDescriptor,
                                  Dipole2BDescriptor, Exchange3BDescriptor, SOSODescriptor,
                                  SplineExchangeDescriptor)
from otf_spin.model.covariance import DotProductKernel
from otf_spin.model.gpr import SparseGPR
from otf_spin.model.selection import TermSelectingGPR, selects


def build_model(settings: dict | None = None):
    """A :class:`~otf_spin.model.gpr.SparseGPR` from validated settings (default: defaults);
    with ``select_terms`` (and no further term named) a
    :class:`~otf_spin.model.selection.TermSelectingGPR` that chooses its terms when fitted."""
    s = settings or default_settings()
    if not selects(s):
        return build_gpr(s)
    model = _assemble(s, TermSelectingGPR)
    model.build_candidate = build_gpr
    return model


def build_gpr(settings: dict):
    """The plain :class:`~otf_spin.model.gpr.SparseGPR` of ``settings`` (no selection)."""
    return _assemble(settings, SparseGPR)


def _assemble(s: dict, cls):
    descriptor = build_descriptor(s["descriptor"])
    masks = [kernel_mask(descriptor, k) for k in s["kernels"]]
    kernels = [DotProductKernel(k["zeta"], k["normalize"], mask)
               for k, mask in zip(s["kernels"], masks)]
    n_sparse = [k["n_sparse"] if k["n_sparse"] is not None else
                descriptor.size if mask is None else int(mask.sum())
                for k, mask in zip(s["kernels"], masks)]
    model = cls(descriptor, kernels, n_sparse, [k["delta"] for k in s["kernels"]],
                s["noise"]["energy"], s["noise"]["field"], s["optimise"],
                s.get("variance_sparse", VARIANCE_SPARSE))
    model.settings = s
    return model


def build_descriptor(d: dict):
    """The descriptor of validated ``descriptor`` settings: the exchange-2b
    :class:`~otf_spin.descriptors.SOSODescriptor` alone (no further terms: exactly the
    exchange-2b-only model, also for settings stored before the terms existed), else a
    :class:`~otf_spin.descriptors.CompositeDescriptor` of exchange-2b and the terms
    given, in the order of ``TERMS``."""
    two_body = SOSODescriptor(d["r_cut"], d["n_max"], d["l_max"], d["sigma_s"],
                              d["radial_scaling"])
    terms = [two_body]
    if d.get("exchange_3b") is not None:
        t = d["exchange_3b"]
        terms.append(Exchange3BDescriptor(t["r_cut"], t["n_max"], t["l_max"], t["sigma_s"],
                                          t["radial_scaling"]))
    if d.get("dipole_2b") is not None:
        t = d["dipole_2b"]
        terms.append(Dipole2BDescriptor(t["r_cut"], t["n_max"], t["degree"],
                                        t["radial_scaling"],
                                        t.get("fm_direction", (0.0, 0.0, 1.0))))
    if d.get("exchange_2b_spline") is not None:
        t = d["exchange_2b_spline"]
        terms.append(SplineExchangeDescriptor(t["r_min"], t["r_max"], t["spacing"], t["l_max"],
                                              t["sigma_s"]))
    if d.get("exchange_2b_angle") is not None:
        t = d["exchange_2b_angle"]
        terms.append(AngleExchangeDescriptor(t["r_cut"], t["n_max"], t["k_max"],
                                             t["radial_scaling"]))
    return two_body if len(terms) == 1 else CompositeDescriptor(terms)


def kernel_mask(descriptor, kernel: dict):
    """(D,) 0/1 mask of the components kernel settings ``kernel`` see (``term``, its
    ``orders`` of exchange-2b, and the whole blocks of ``with_terms``), or None for the
    whole descriptor."""
    term = kernel.get("term", "exchange_2b")
    orders = kernel.get("orders")
    terms = getattr(descriptor, "terms", [descriptor])
    kinds = [t.kind for t in terms]
    if term not in kinds:
        raise ConfigError(f"kernels: term {term!r} is not in the descriptor (it has "
                          f"{', '.join(kinds)}; add descriptor.{term})")
    if orders is not None and term != "exchange_2b":
        raise ConfigError(f"kernels: orders select Legendre orders of exchange_2b, not of "
                          f"{term}")
    inner = None if orders is None else terms[0].order_mask(orders)
    if len(terms) == 1:
        return inner
    mask = descriptor.term_mask(term, inner)
    for other in kernel.get("with_terms") or ():
        if other not in kinds:
            raise ConfigError(f"kernels: with_terms {other!r} is not in the descriptor (it "
                              f"has {', '.join(kinds)}; add descriptor.{other})")
        mask = mask + descriptor.term_mask(other)
    return mask
