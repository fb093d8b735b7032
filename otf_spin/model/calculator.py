"""ASE calculator around a fitted model (ASE's calculator contract).

Spins come from ``atoms.get_initial_magnetic_moments()`` as N×3 vectors (μB).
Results: energy (eV, rel. to FM), energies (N,), fields (N, 3) eV/μB, energy_std (eV),
fields_std (N, 3) eV/μB.
"""
from __future__ import annotations

from ase.calculators.calculator import Calculator, all_changes

from otf_spin.system import SpinSystem


class SOSOCalculator(Calculator):
    implemented_properties = ("energy", "energies", "fields", "energy_std", "fields_std")

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        system = SpinSystem.from_ase(self.atoms)
        self.results = self.model.compute(system, properties)   # otf_spin.calculator contract
