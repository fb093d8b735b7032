"""``type: vasp`` — constrained noncollinear VASP (I_CONSTRAINED_M = 1) as the oracle.

What is written (template; docs/oracles.md lists every tag with the VASP wiki's reason):
POSCAR (ASE), KPOINTS (Γ-centred or Monkhorst-Pack mesh), POTCAR (concatenated from
``potcar_dir/<species>/POTCAR``), INCAR with LNONCOLLINEAR (no ISPIN: VASP ≥ 6.5 stops on
ISPIN = 2 with LNONCOLLINEAR), ISYM = -1, LASPH, LORBIT 11, MAGMOM = |m_i| e_i,
M_CONSTR = e_i, I_CONSTRAINED_M = 1, LAMBDA, RWIGS per species, plus the user's tags.
How it is launched (profile): ``command`` (e.g. ``mpirun -np 16 vasp_ncl``).

What is read (VASP 6.x formats; layout checked on real VASP 6 OSZICARs in
tests/fixtures/vasp_real/):
- OSZICAR: the last ``E_p = ... lambda = ...`` / ``lambda*MW_perp`` block after the final
  ionic step, one row per constrained ion::

     E_p =  0.36600E-07  lambda =  0.500E+02
     ion             lambda*MW_perp
      1  -0.67580E-03  -0.12424E-22  -0.88276E-23

  and the last ``ion  MW_int  M_int`` table (the smoothed integrated moment MW, on which
  the penalty E_p = λ Σ_I |MW_I⊥|² acts, and the plain integrated moment M_int, μB).
  A row is λ MW_I⊥ (eV/μB).
- OUTCAR: ``energy(sigma->0)`` (eV, includes E_p as TOTEN does), the
  ``magnetization (x)/(y)/(z)`` tables (μB, ``tot`` column), convergence.

Labels (derivation in docs/oracles.md): with |m_i| the returned moment magnitude,
    fields_i = (2 |MW_i| / |m_i|) row_i, projected perpendicular to e_i (eV/μB),
since -∂E/∂e_i = 2 |MW_i| row_i; energy = E(sigma->0) + E_p (the constrained energy at
the target directions to O(λ⁻²)) minus the same for the collinear FM reference of the
structure (unconstrained, E_p = 0). The residual perpendicular moment |row|/λ (μB) must
stay below ``max_residual``; otherwise LAMBDA × ``lambda_factor`` (≤ ``lambda_max``) is
rerun in the same job folder, restarting from that run's WAVECAR/CHGCAR.
"""
from __future__ import annotations

import os
import re

import numpy as np

from otf_spin.config.engine import Key, Section
from otf_spin.config.oracles import MOMENT_KEY
from otf_spin.core import ConfigError, OracleFailure
from otf_spin.oracles.fileio import ConstrainedDFTOracle, job_keys, ramp_keys
from otf_spin.system import transverse

#: version of the set of INCAR tags written (docs/oracles.md lists it), in the provenance
INPUT_SET = "2026.12"
#: fraction of half the shortest interatomic distance used as the default RWIGS
RWIGS_FRACTION = 0.95
#: INCAR tags the backend sets itself (refused in ``incar``), and tags it refuses
MANAGED_TAGS = ("LNONCOLLINEAR", "MAGMOM", "M_CONSTR", "I_CONSTRAINED_M", "LAMBDA", "RWIGS",
                "ISTART", "ICHARG")
REFUSED_TAGS = {
    "ISPIN": "VASP >= 6.5 stops when ISPIN = 2 is combined with LNONCOLLINEAR; noncollinear "
             "runs need no ISPIN",
    "SAXIS": "MAGMOM, M_CONSTR and the lambda*MW_perp rows would then be in the SAXIS frame; "
             "without spin-orbit coupling the axis has no physical effect, so leave the "
             "default (0, 0, 1)",
}

SCHEMA = Section({
    "command": Key("str", "launch command run in each job directory, e.g. 'mpirun -np 16 "
                   "vasp_ncl'"),
    **job_keys(86400.0),
    "potcar_dir": Key("folder", "folder with <species>/POTCAR (e.g. .../potpaw_PBE; "
                      "relative: to the YAML file)"),
    "potcar_variants": Key("mapping", "species -> POTCAR folder name, e.g. {Fe: Fe_pv}", {}),
    "kpoints": Key("list", "k-point mesh", [6, 6, 6], item=Key("int", "n", minimum=1),
                   length=3),
    "gamma_centred": Key("bool", "Γ-centred mesh (else Monkhorst-Pack)", True),
    "rwigs": Key("quantity", "radius of the moment-integration spheres (RWIGS, all species); "
                 "null: 0.95 × half the shortest interatomic distance of each species in the "
                 "first structure labelled", None, unit="angstrom", dimension="length",
                 minimum=0.01, nullable=True),
    **ramp_keys(10.0, 100.0, "eV/μB²", 0.01),
    "restart": Key("bool", "a LAMBDA ramp restarts from the previous run's WAVECAR/CHGCAR "
                   "(written with LWAVE/LCHARG)", True),
    "incar": Key("mapping", "INCAR tags added to (or replacing) the defaults ENCUT 500, "
                 "EDIFF 1e-6, ISMEAR 1, SIGMA 0.1, NELM 200, PREC Accurate (the paper's), "
                 "ISYM -1, LASPH .TRUE.", {}),
    "moment": MOMENT_KEY,
}, "constrained noncollinear VASP")

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[EeDd][-+]?\d+)?"


def _number(text: str) -> float:
    return float(text.replace("D", "E").replace("d", "e"))


def parse_oszicar_constraint(text: str, n_ions: int):
    """(E_p in eV, lambda, rows (n_ions, 3) eV/μB with NaN for absent ions) of the last
    ``lambda*MW_perp`` block of an OSZICAR."""
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
        rows[int(parts[0]) - 1] = [_number(x) for x in parts[1:4]]
    return _number(last.group(1)), _number(last.group(2)), rows


def parse_oszicar_moments(text: str, n_ions: int) -> dict:
    """The last electronic step's constraint block of an OSZICAR: E_p, <lVp>, DBL (eV) and
    the ``MW_int`` / ``M_int`` table as arrays (n_ions, 3) in μB (NaN for absent ions)."""
    blocks = list(re.finditer(
        rf"E_p\s*=\s*({_FLOAT})\s+lambda\s*=\s*({_FLOAT})\s*\n\s*<lVp>\s*=\s*({_FLOAT})\s*\n"
        rf"\s*DBL\s*=\s*({_FLOAT})\s*\n\s*ion\s+MW_int\s+M_int\s*\n"
        rf"((?:\s*\d+(?:\s+{_FLOAT}){{6}}\s*\n?)+)", text))
    if not blocks:
        raise ValueError("no 'ion  MW_int  M_int' table in OSZICAR (is I_CONSTRAINED_M set?)")
    last = blocks[-1]
    mw, m_int = np.full((n_ions, 3), np.nan), np.full((n_ions, 3), np.nan)
    for line in last.group(5).strip().splitlines():
        parts = line.split()
        k = int(parts[0]) - 1
        if k < n_ions:
            mw[k] = [_number(x) for x in parts[1:4]]
            m_int[k] = [_number(x) for x in parts[4:7]]
    return {"penalty": _number(last.group(1)), "lambda": _number(last.group(2)),
            "lvp": _number(last.group(3)), "dbl": _number(last.group(4)),
            "mw": mw, "m_int": m_int}


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


def default_rwigs(system) -> dict:
    """species -> RWIGS (Å): :data:`RWIGS_FRACTION` × half the shortest distance from an
    atom of that species to any other atom (periodic images included), so that no two
    integration spheres overlap."""
    shortest, cutoff = np.full(len(system), np.inf), 3.0
    while not np.isfinite(shortest).all():
        nl = system.neighbours(cutoff)
        np.minimum.at(shortest, nl.i, nl.distances)
        cutoff *= 2.0
    species = np.asarray(system.species)
    return {str(s): RWIGS_FRACTION * float(shortest[species == s].min()) / 2.0
            for s in dict.fromkeys(system.species)}


class VaspOracle(ConstrainedDFTOracle):
    name = "vasp"
    implemented_properties = ("energy", "fields", "magmoms")
    schema = SCHEMA
    kept_outputs = ("INCAR", "OSZICAR", "OUTCAR", "job.out", "job.err")

    def __init__(self, profile, settings, workdir="oracle_jobs"):
        super().__init__(profile, settings, workdir)
        self._rwigs = None

    @classmethod
    def check_config(cls, block):
        if not os.path.isdir(block["potcar_dir"]):
            raise ConfigError(f"potcar_dir: folder {block['potcar_dir']!r} not found")
        for species, variant in block["potcar_variants"].items():
            path = os.path.join(block["potcar_dir"], str(variant), "POTCAR")
            if not os.path.isfile(path):
                raise ConfigError(f"potcar_variants.{species}: {path!r} not found")
        for tag in block["incar"]:
            if tag.upper() in REFUSED_TAGS:
                raise ConfigError(f"incar.{tag}: not supported ({REFUSED_TAGS[tag.upper()]})")
            if tag.upper() in MANAGED_TAGS:
                raise ConfigError(f"incar.{tag}: set by the backend (use the oracle keys "
                                  f"rwigs, lambda, restart)")

    def settings(self):
        return {**super().settings(), "input_set": INPUT_SET}

    def rwigs(self, system, job: str = "rwigs") -> dict:
        """species -> RWIGS (Å) for ``system``: the ``rwigs`` key, or the default fixed
        on the first structure; fails (naming ``job``) if spheres of this structure would
        overlap."""
        species = list(dict.fromkeys(system.species))
        if self._rwigs is None:
            given = self.cfg.get("rwigs")
            self._rwigs = {s: given for s in species} if given else default_rwigs(system)
        missing = [s for s in species if s not in self._rwigs]
        if missing:
            self._rwigs.update({s: r for s, r in default_rwigs(system).items() if s in missing})
        limit = default_rwigs(system)
        for s in species:
            if self._rwigs[s] > limit[s] / RWIGS_FRACTION + 1e-9:
                raise OracleFailure(job, "other",
                                    f"rwigs {self._rwigs[s]:.4f} Å for {s} exceeds half its "
                                    f"shortest interatomic distance "
                                    f"({limit[s] / RWIGS_FRACTION:.4f} Å): spheres overlap")
        return {s: self._rwigs[s] for s in species}

    # --- template: what to write --------------------------------------------------
    def _write(self, system, directory, constrained: bool, lam: float, restart: bool = False):
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
        rwigs = self.rwigs(system, os.path.basename(directory))
        keep = constrained and self.cfg["restart"]
        tags = {"SYSTEM": "otf-spin", "LNONCOLLINEAR": ".TRUE.", "LORBIT": 11,
                "LWAVE": keep, "LCHARG": keep, "ISYM": -1, "LASPH": True,
                "MAGMOM": " ".join(f"{x:.8f}" for x in moments.ravel()),
                "RWIGS": " ".join(f"{rwigs[s]:.4f}" for s in species)}
        tags.update({"ENCUT": 500, "EDIFF": 1e-6, "ISMEAR": 1, "SIGMA": 0.1, "NELM": 200,
                     "PREC": "Accurate"})
        tags.update(self.cfg["incar"])
        if constrained:
            tags.update({"I_CONSTRAINED_M": 1, "LAMBDA": f"{lam:g}",
                         "M_CONSTR": " ".join(f"{x:.10f}" for x in e.ravel())})
        if restart:
            def present(name):
                path = os.path.join(directory, name)
                return os.path.exists(path) and os.path.getsize(path) > 0

            tags["ISTART"] = 1 if present("WAVECAR") else 0
            tags["ICHARG"] = 1 if present("CHGCAR") else 0 if tags["ISTART"] else 2
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
        results = {"energy_total": outcar["energy"], "magmoms": outcar["moments"],
                   "penalty": 0.0}
        if constrained:
            text = open(os.path.join(directory, "OSZICAR")).read()
            e_p, lam, rows = parse_oszicar_constraint(text, n)
            table = parse_oszicar_moments(text, n)
            missing = np.flatnonzero(np.isnan(rows).any(axis=1) | np.isnan(table["mw"]).any(axis=1))
            if len(missing):
                raise ValueError(f"no lambda*MW_perp row or MW_int for ions "
                                 f"{(missing + 1).tolist()}")
            results.update(penalty=e_p, lambda_=lam, rows=rows, mw=table["mw"])
        return results

    def compute(self, system, properties=None):
        self.check_properties(properties)

        def reference():                   # unconstrained FM: E_p = 0, labelled alike
            out = self.run_job(system, lambda s, d: self._write(s, d, False, 0.0),
                               lambda s, d: self._read(s, d, False))
            return out["energy_total"] + out["penalty"]

        fm = self.fm_energy(system, reference)
        out = self.constrained_run(
            system, lambda s, d, lam, restart: self._write(s, d, True, lam, restart),
            lambda s, d: self._read(s, d, True),
            lambda o: np.max(np.linalg.norm(o["rows"], axis=1)) / max(o["lambda_"], 1e-300))
        e = system.directions
        magnitudes = np.linalg.norm(out["magmoms"], axis=1)
        if magnitudes.min() < 1e-3:
            raise OracleFailure(out["info"]["job"], "nan",
                                f"atom {int(np.argmin(magnitudes)) + 1} has no moment "
                                f"({magnitudes.min():.2g} μB): its field is undefined")
        scale = 2.0 * np.linalg.norm(out["mw"], axis=1) / magnitudes      # 2|MW|/|m|
        fields = scale[:, None] * out["rows"]                # internal = -constraining field
        fields = transverse(fields, e)
        energy = out["energy_total"] + out["penalty"]
        rows = np.linalg.norm(out["rows"], axis=1)
        magmoms = e * magnitudes[:, None]
        return {"energy": energy - fm, "fields": fields, "magmoms": magmoms,
                "info": dict(out["info"], penalty=out["penalty"],
                             net_torque=self.net_torque(magmoms, fields),
                             max_residual_moment=float(rows.max() / out["lambda_"]),
                             rwigs=self.rwigs(system))}
