"""``type: vasp`` — constrained noncollinear VASP (I_CONSTRAINED_M = 1) as the oracle.

What is written (template): POSCAR (ASE), KPOINTS (Γ-centred or Monkhorst-Pack mesh),
POTCAR (concatenated from ``potcar_dir/<species>/POTCAR``), INCAR with LNONCOLLINEAR,
ISPIN 2, MAGMOM = |m_i| e_i, M_CONSTR = e_i, I_CONSTRAINED_M = 1, LAMBDA, RWIGS, plus the
user's tags. How it is launched (profile): ``command`` (e.g. ``mpirun -np 16 vasp_ncl``).

What is read (VASP 6.x formats, VASP wiki I_CONSTRAINED_M / OSZICAR):
- OSZICAR, last block after the final ionic step::

     E_p =  0.36600E-07  lambda =  0.500E+02
     ion             lambda*MW_perp
      1  -0.67580E-03  -0.12424E-22  -0.88276E-23

  rows are listed by ion index (unconstrained ions may be absent). With
  E_p = λ Σ_I |ΔM_I|² (ΔM_I the part of the integrated moment perpendicular to its
  target) a row is λΔM_I; the constraining field is -∂E_p/∂M = -2λΔM = -2·row, and the
  internal transverse field — the label — is its negative, +2·row (eV/μB).
- OUTCAR: ``energy(sigma->0)`` (eV), the ``magnetization (x)/(y)/(z)`` tables (μB, ``tot``
  column), convergence ("aborting loop because EDIFF is reached").

Energy label: E(constrained) - E(collinear FM) of the same structure (paper Eq. 37),
the FM reference computed once per structure (unconstrained, MAGMOM along z), and with
``subtract_penalty`` the penalty E_p removed from the constrained energy.
Constraint quality: the residual perpendicular moment |row|/λ (μB) of every atom must
stay below ``max_residual``; otherwise the job is repeated with LAMBDA × ``lambda_factor``
(up to ``lambda_max``) and finally fails with kind 'convergence'.
"""
from __future__ import annotations

import os
import re

import numpy as np

from otf_spin.io.config import ConfigError, Key, Section
from otf_spin.oracles.base import OracleFailure
from otf_spin.oracles.base import MOMENT_KEY
from otf_spin.oracles.fileio import ConstrainedDFTOracle, job_keys

SCHEMA = Section({
    "command": Key("str", "launch command run in each job directory, e.g. 'mpirun -np 16 "
                   "vasp_ncl'"),
    **job_keys(86400.0),
    "potcar_dir": Key("str", "folder with <species>/POTCAR (e.g. .../potpaw_PBE)"),
    "potcar_variants": Key("mapping", "species -> POTCAR folder name, e.g. {Fe: Fe_pv}", {}),
    "kpoints": Key("list", "k-point mesh", [6, 6, 6], item=Key("int", "n", minimum=1),
                   length=3),
    "gamma_centred": Key("bool", "Γ-centred mesh (else Monkhorst-Pack)", True),
    "rwigs": Key("quantity", "Wigner-Seitz radius of the moment integration (RWIGS)", 1.3,
                 unit="angstrom", dimension="length", minimum=0.01),
    "lambda": Key("float", "initial LAMBDA (eV/μB²)", 10.0, minimum=0.0),
    "lambda_factor": Key("float", "LAMBDA multiplier when the constraint is poor", 2.0,
                         minimum=1.0),
    "lambda_max": Key("float", "largest LAMBDA tried (eV/μB²)", 100.0, minimum=0.0),
    "max_residual": Key("quantity", "largest allowed residual perpendicular moment |row|/λ",
                        0.01, unit="μB", dimension="moment", minimum=0.0),
    "subtract_penalty": Key("bool", "remove E_p from the constrained energy", True),
    "incar": Key("mapping", "INCAR tags added to (or replacing) the defaults ENCUT 500, "
                 "EDIFF 1e-6, ISMEAR 1, SIGMA 0.1, NELM 200, PREC Accurate (the paper's)", {}),
    "moment": MOMENT_KEY,
}, "constrained noncollinear VASP")

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[EeDd][-+]?\d+)?"


def parse_oszicar_constraint(text: str, n_ions: int):
    """(E_p in eV, lambda, rows (n_ions, 3) eV/μB with NaN for absent ions) of the last
    constraint block of an OSZICAR."""
    blocks = list(re.finditer(rf"E_p\s*=\s*({_FLOAT})\s+lambda\s*=\s*({_FLOAT})\s*\n"
                              rf"\s*ion\s+lambda\*MW_perp\s*\n((?:\s*\d+(?:\s+{_FLOAT}){{3}}\s*\n?)+)",
                              text))
    if not blocks:
        raise ValueError("no 'E_p = ... lambda*MW_perp' block in OSZICAR (is I_CONSTRAINED_M "
                         "set and the run finished?)")
    last = blocks[-1]
    rows = np.full((n_ions, 3), np.nan)
    for line in last.group(3).strip().splitlines():
        parts = line.split()
        rows[int(parts[0]) - 1] = [float(x.replace("D", "E")) for x in parts[1:4]]
    return float(last.group(1)), float(last.group(2)), rows


def parse_outcar(text: str, n_ions: int) -> dict:
    """energy(sigma->0) (eV), moments (n_ions, 3) μB from the last magnetization (x/y/z)
    tables, and whether the electronic loop converged."""
    energies = re.findall(rf"energy\s+without entropy\s*=\s*{_FLOAT}\s+energy\(sigma->0\)\s*=\s*"
                          rf"({_FLOAT})", text)
    if not energies:
        raise ValueError("no 'energy(sigma->0)' line in OUTCAR")
    moments = np.zeros((n_ions, 3))
    for axis, name in enumerate("xyz"):
        tables = list(re.finditer(rf"magnetization \({name}\)\s*\n\s*\n?\s*# of ion.*\n-+\n"
                                  rf"((?:\s*\d+(?:\s+{_FLOAT})+\s*\n)+)", text))
        if not tables:
            raise ValueError(f"no 'magnetization ({name})' table in OUTCAR (set LORBIT = 11)")
        for line in tables[-1].group(1).strip().splitlines():
            parts = line.split()
            moments[int(parts[0]) - 1, axis] = float(parts[-1])
    converged = "aborting loop because EDIFF is reached" in text
    unconverged = "aborting loop EDIFF was not reached" in text
    return {"energy": float(energies[-1]), "moments": moments,
            "converged": converged and not unconverged}


class VaspOracle(ConstrainedDFTOracle):
    name = "vasp"
    implemented_properties = ("energy", "fields", "magmoms")
    schema = SCHEMA

    @classmethod
    def check_config(cls, block):
        if not os.path.isdir(block["potcar_dir"]):
            raise ConfigError(f"potcar_dir: folder {block['potcar_dir']!r} not found")

    # --- template: what to write --------------------------------------------------
    def _write(self, system, directory, constrained: bool, lam: float):
        import ase.io

        atoms = system.to_ase()
        del atoms.arrays["initial_magmoms"]
        ase.io.write(os.path.join(directory, "POSCAR"), atoms, format="vasp", direct=True,
                     sort=False, parallel=False)
        species = list(dict.fromkeys(system.species))
        if list(system.species) != sorted(system.species, key=species.index):
            raise OracleFailure(os.path.basename(directory), "other",
                                "atoms of one species must be contiguous for POTCAR order")
        variants = self.cfg.get("potcar_variants") or {}
        with open(os.path.join(directory, "POTCAR"), "w") as potcar:
            for s in species:
                path = os.path.join(self.cfg["potcar_dir"], variants.get(s, s), "POTCAR")
                if not os.path.exists(path):
                    raise OracleFailure(os.path.basename(directory), "other",
                                        f"POTCAR for {s} not found at {path}")
                potcar.write(open(path).read())
        kind = "Gamma" if self.cfg["gamma_centred"] else "Monkhorst-Pack"
        with open(os.path.join(directory, "KPOINTS"), "w") as handle:
            handle.write(f"otf-spin\n0\n{kind}\n{' '.join(map(str, self.cfg['kpoints']))}\n0 0 0\n")
        e = system.directions
        moments = e * system.magnitudes[:, None] if constrained else \
            np.tile([0.0, 0.0, 1.0], (len(system), 1)) * system.magnitudes[:, None]
        tags = {"SYSTEM": "otf-spin", "LNONCOLLINEAR": ".TRUE.", "ISPIN": 2, "LORBIT": 11,
                "LWAVE": ".FALSE.", "LCHARG": ".FALSE.", "ISYM": 0,
                "MAGMOM": " ".join(f"{x:.8f}" for x in moments.ravel()),
                "RWIGS": " ".join(f"{self.cfg['rwigs']:.4f}" for _ in species)}
        tags.update({"ENCUT": 500, "EDIFF": 1e-6, "ISMEAR": 1, "SIGMA": 0.1, "NELM": 200,
                     "PREC": "Accurate"})
        tags.update(self.cfg["incar"])
        if constrained:
            tags.update({"I_CONSTRAINED_M": 1, "LAMBDA": f"{lam:g}",
                         "M_CONSTR": " ".join(f"{x:.10f}" for x in e.ravel())})
        with open(os.path.join(directory, "INCAR"), "w") as handle:
            for key, value in tags.items():
                if isinstance(value, bool):
                    value = ".TRUE." if value else ".FALSE."
                handle.write(f"{key} = {value}\n")
        return {}

    # --- template: what to read ---------------------------------------------------
    def _read(self, system, directory, constrained: bool):
        n = len(system)
        outcar = parse_outcar(open(os.path.join(directory, "OUTCAR")).read(), n)
        job = os.path.basename(directory)
        if not outcar["converged"]:
            raise OracleFailure(job, "convergence", "electronic loop did not reach EDIFF")
        results = {"energy_total": outcar["energy"], "magmoms": outcar["moments"]}
        if constrained:
            e_p, lam, rows = parse_oszicar_constraint(
                open(os.path.join(directory, "OSZICAR")).read(), n)
            missing = np.flatnonzero(np.isnan(rows).any(axis=1))
            if len(missing):
                raise ValueError(f"no lambda*MW_perp row for ions {(missing + 1).tolist()}")
            results.update(penalty=e_p, lambda_=lam, rows=rows)
        return results

    def compute(self, system):
        e_fm = self.fm_energy(system, lambda: self.run_job(
            system, lambda s, d: self._write(s, d, False, 0.0),
            lambda s, d: self._read(s, d, False))["energy_total"])
        lam = self.cfg["lambda"]
        while True:
            out = self.run_job(system, lambda s, d: self._write(s, d, True, lam),
                               lambda s, d: self._read(s, d, True))
            residual = np.linalg.norm(out["rows"], axis=1) / max(out["lambda_"], 1e-300)
            if residual.max() <= self.cfg["max_residual"]:
                break
            if lam * self.cfg["lambda_factor"] > self.cfg["lambda_max"] or \
                    self.cfg["lambda_factor"] == 1.0:
                raise OracleFailure(out["info"]["job"], "convergence",
                                    f"constraint not reached: residual moment "
                                    f"{residual.max():.4f} μB > {self.cfg['max_residual']} μB at "
                                    f"LAMBDA {lam:g} (lambda_max {self.cfg['lambda_max']:g})")
            lam *= self.cfg["lambda_factor"]
        e = system.directions
        fields = 2.0 * out["rows"]                          # internal = -constraining field
        fields -= np.einsum("ik,ik->i", fields, e)[:, None] * e
        energy = out["energy_total"] - (out["penalty"] if self.cfg["subtract_penalty"] else 0.0)
        magnitudes = np.linalg.norm(out["magmoms"], axis=1)
        return {"energy": energy - e_fm, "fields": fields,
                "magmoms": e * magnitudes[:, None],
                "info": dict(out["info"], lambda_used=lam, penalty=out["penalty"],
                             max_residual_moment=float(residual.max()))}
