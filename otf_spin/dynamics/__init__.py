"""Spin dynamics and sampling: LLG integrators, thermostat, Metropolis Monte Carlo."""
