"""``type: qe`` — Quantum ESPRESSO pw.x, noncollinear with constrained atomic moments.

Template (what is written): one pw.x input (``pw.in``) with ``noncolin = .true.`` and
``constrained_magnetization = 'atomic'``: pw.x constrains moments *per species*, so each
atom becomes its own species (Fe1, Fe2, ...) with ``starting_magnetization`` = |m_i| (μB)
and ``angle1``/``angle2`` = polar/azimuthal angles of e_i (degrees); the penalty is
λ Σ_i |m_i - m_i^0|² (Ry). QE 6.7 (Debian bookworm) allows at most 10 species.
Profile (how it is launched): ``command``, e.g. ``mpirun -np 2 pw.x -in pw.in``.

Read: the last ``!    total energy`` (Ry; the penalty is *not* included), convergence,
and the last per-atom block ("magnetization :" and "constrained moment :" in μB).
pw.x prints no field. The internal transverse field is minus the constraining field:
B_i = +2 λ_eff (m_i - m_i^0), projected perpendicular to e_i, in Ry/μB -> eV/μB, where
λ_eff = λ Ω/(nr1 nr2 nr3) for pw.x ≤ 7.3.1 (its constraining potential carried that
volume factor, removed after 7.3.1) and λ after. The field is checked against a finite
difference of constrained energies in tests/test_qe_oracle.py (real pw.x, slow).
Energies are relative to the collinear FM state of the same structure with the same
constraint (all e_i = ẑ), computed once per structure.
"""
from __future__ import annotations

import os
import re

import numpy as np

from otf_spin.io.config import Key, Section
from otf_spin.oracles.base import OracleFailure
from otf_spin.oracles.base import MOMENT_KEY
from otf_spin.oracles.fileio import ConstrainedDFTOracle, job_keys
from otf_spin.units import BOHR, RYDBERG

MAX_SPECIES_QE6 = 10
SCHEMA = Section({
    "command": Key("str", "launch command run in each job directory",
                   "mpirun -np 2 pw.x -in pw.in"),
    **job_keys(3600.0),
    "pseudo_dir": Key("str", "pseudopotential folder", "/usr/share/espresso/pseudo"),
    "pseudopotentials": Key("mapping", "species -> UPF file", {"Fe": "Fe.pbe-nd-rrkjus.UPF"}),
    "ecutwfc": Key("float", "wave-function cutoff (Ry)", 30.0, minimum=1.0),
    "ecutrho": Key("float", "density cutoff (Ry)", 240.0, minimum=1.0),
    "kpoints": Key("list", "Monkhorst-Pack mesh", [6, 6, 6], item=Key("int", "n", minimum=1),
                   length=3),
    "degauss": Key("float", "Marzari-Vanderbilt smearing width (Ry)", 0.02, minimum=0.0),
    "lambda": Key("float", "penalty weight λ of constrained_magnetization (Ry/μB²)", 20.0,
                  minimum=0.0),
    "conv_thr": Key("float", "SCF convergence threshold (Ry)", 1e-8, minimum=0.0),
    "mixing_beta": Key("float", "SCF mixing", 0.2, minimum=0.0, maximum=1.0),
    "volume_factor": Key("str", "λ_eff = λΩ/N_FFT: auto (by the pw.x version printed), "
                         "always, never", "auto", choices=("auto", "always", "never")),
    "moment": MOMENT_KEY,
}, "Quantum ESPRESSO pw.x, constrained noncollinear")

MASSES = {"Fe": 55.845, "Co": 58.933, "Ni": 58.693, "Mn": 54.938, "Cr": 51.996}
_F = r"[-+]?\d+\.\d+(?:[Ee][-+]?\d+)?"


def parse_pw_output(text: str, n_atoms: int) -> dict:
    """Energy (Ry), moments and targets (n, 3) μB, volume (bohr³), FFT grid, version."""
    energies = re.findall(rf"^!\s+total energy\s+=\s+({_F}) Ry", text, re.M)
    if not energies:
        raise ValueError("no '!    total energy' line in the pw.x output")
    version = re.search(r"Program PWSCF v\.(\d+)\.(\d+)(?:\.(\d+))?", text)
    fft = re.search(r"Dense\s+grid:.*FFT dimensions:\s*\(\s*(\d+),\s*(\d+),\s*(\d+)\)", text)
    volume = re.search(rf"unit-cell volume\s+=\s+({_F}) \(a\.u\.\)\^3", text)
    moments = np.full((n_atoms, 3), np.nan)
    targets = np.full((n_atoms, 3), np.nan)
    for match in re.finditer(rf"atom number\s+(\d+).*?\n(?:.*\n)*?\s+magnetization :\s+({_F})\s+"
                             rf"({_F})\s+({_F})\s*\n(?:.*\n)*?\s+constrained moment :\s+({_F})\s+"
                             rf"({_F})\s+({_F})", text):
        k = int(match.group(1)) - 1
        moments[k] = [float(match.group(i)) for i in (2, 3, 4)]
        targets[k] = [float(match.group(i)) for i in (5, 6, 7)]
    return {"energy": float(energies[-1]), "moments": moments, "targets": targets,
            "converged": "convergence has been achieved" in text
                         and "convergence NOT achieved" not in text,
            "version": tuple(int(v or 0) for v in version.groups()) if version else None,
            "fft": tuple(int(x) for x in fft.groups()) if fft else None,
            "volume": float(volume.group(1)) if volume else None}


class QEOracle(ConstrainedDFTOracle):
    name = "qe"
    implemented_properties = ("energy", "fields", "magmoms")
    schema = SCHEMA

    def _write(self, system, directory, directions):
        n = len(system)
        job = os.path.basename(directory)
        if n > MAX_SPECIES_QE6:
            raise OracleFailure(job, "other", f"pw.x constrains moments per species and allows "
                                f"at most {MAX_SPECIES_QE6} species; this structure has {n} atoms")
        missing = sorted(set(system.species) - set(self.cfg["pseudopotentials"]))
        if missing:
            raise OracleFailure(job, "other", f"no pseudopotential given for {missing}")
        theta = np.degrees(np.arccos(np.clip(directions[:, 2], -1, 1)))
        phi = np.degrees(np.arctan2(directions[:, 1], directions[:, 0]))
        c = self.cfg
        lines = ["&CONTROL", "  calculation = 'scf'", "  prefix = 'otf'", "  outdir = './tmp'",
                 f"  pseudo_dir = '{c['pseudo_dir']}'", "/", "&SYSTEM", "  ibrav = 0",
                 f"  nat = {n}", f"  ntyp = {n}", f"  ecutwfc = {c['ecutwfc']}",
                 f"  ecutrho = {c['ecutrho']}", "  occupations = 'smearing'",
                 "  smearing = 'mv'", f"  degauss = {c['degauss']}", "  noncolin = .true.",
                 "  nosym = .true.", "  constrained_magnetization = 'atomic'",
                 f"  lambda = {c['lambda']}", "  report = 1"]
        for i in range(n):
            lines += [f"  starting_magnetization({i + 1}) = {system.magnitudes[i]:.6f}",
                      f"  angle1({i + 1}) = {theta[i]:.8f}", f"  angle2({i + 1}) = {phi[i]:.8f}"]
        lines += ["/", "&ELECTRONS", f"  conv_thr = {c['conv_thr']}",
                  f"  mixing_beta = {c['mixing_beta']}", "/", "ATOMIC_SPECIES"]
        for i, s in enumerate(system.species):
            lines.append(f"  {s}{i + 1} {MASSES.get(s, 1.0)} {c['pseudopotentials'][s]}")
        lines.append("CELL_PARAMETERS angstrom")
        lines += ["  " + " ".join(f"{x:.10f}" for x in row) for row in system.cell]
        lines.append("ATOMIC_POSITIONS angstrom")
        lines += [f"  {s}{i + 1} " + " ".join(f"{x:.10f}" for x in p)
                  for i, (s, p) in enumerate(zip(system.species, system.positions))]
        lines += ["K_POINTS automatic", " ".join(map(str, c["kpoints"])) + " 0 0 0", ""]
        with open(os.path.join(directory, "pw.in"), "w") as handle:
            handle.write("\n".join(lines))
        return {}

    def _read(self, system, directory):
        text = ""
        for name in ("job.out", "pw.out"):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                text += open(path, errors="replace").read()
        out = parse_pw_output(text, len(system))
        if not out["converged"]:
            raise OracleFailure(os.path.basename(directory), "convergence",
                                "pw.x SCF did not converge (see job.out)")
        if np.isnan(out["moments"]).any():
            raise ValueError("no per-atom 'magnetization'/'constrained moment' block")
        return out

    def lambda_eff(self, out) -> float:
        """λ of the constraining potential actually applied (Ry/μB²)."""
        mode = self.cfg["volume_factor"]
        old = out["version"] is not None and out["version"] <= (7, 3, 1)
        if mode == "always" or (mode == "auto" and old):
            if out["fft"] is None or out["volume"] is None:
                raise ValueError("FFT grid or cell volume missing in the pw.x output")
            return self.cfg["lambda"] * out["volume"] / float(np.prod(out["fft"]))
        return self.cfg["lambda"]

    def compute(self, system):
        z = np.tile([0.0, 0.0, 1.0], (len(system), 1))
        e_fm = self.fm_energy(system, lambda: self.run_job(
            system, lambda s, d: self._write(s, d, z), self._read)["energy"])
        out = self.run_job(system, lambda s, d: self._write(s, d, s.directions), self._read)
        e = system.directions
        field = 2.0 * self.lambda_eff(out) * (out["moments"] - out["targets"]) * RYDBERG
        field -= np.einsum("ik,ik->i", field, e)[:, None] * e
        return {"energy": (out["energy"] - e_fm) * RYDBERG, "fields": field,
                "magmoms": out["moments"],
                "info": dict(out["info"], lambda_eff=self.lambda_eff(out),
                             pw_version=".".join(map(str, out["version"] or ())))}
