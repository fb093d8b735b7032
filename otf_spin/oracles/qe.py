"""``type: qe`` — Quantum ESPRESSO pw.x, noncollinear with constrained atomic moments.

Template (what is written): one pw.x input (``pw.in``) with ``noncolin = .true.`` and
``constrained_magnetization = 'atomic'``: pw.x constrains moments *per species*, so each
atom becomes its own species, labelled element + one or two characters, unique within
the 3 characters pw.x keeps (Fe1 … Fe9, Fe0, FeA, …; H1 … H99), with
``starting_magnetization`` = |m_i| (μB) and ``angle1``/``angle2`` = polar/azimuthal angles
of e_i (degrees); the penalty is λ Σ_i |m_i - m_i⁰|² (Ry). A stock pw.x has at most
ntypx = 10 species (Modules/parameters.f90), so at most 10 atoms per job: larger cells
fail before launch (``max_species`` for a pw.x rebuilt with a larger ntypx).
Profile (how it is launched): ``command``, e.g. ``mpirun -np 2 pw.x -in pw.in``.

Read: the last ``!    total energy`` (Ry; the penalty is *not* included), convergence,
the last per-atom block ("magnetization :" and "constrained moment :" in μB), the
version, cell volume and FFT grid. λ_eff = λ Ω/(nr1 nr2 nr3) for pw.x ≤ 7.3.1 (its
constraining potential carried that volume factor, removed after 7.3.1; PW/src/add_bfield.f90)
and λ after. With x_i = m_i - m_i⁰ (derivation in docs/oracles.md):
    fields_i = 2 λ_eff x_i projected perpendicular to e_i (Ry/μB -> eV/μB),
    energy   = E! + 2 λ_eff Σ_i |x_i|² (the constrained energy at m⁰ to O(λ⁻²)),
relative to the FM state of the same structure constrained along z and labelled alike
(once per structure); the labelled moments are the targets |m_i⁰| e_i. The residual
perpendicular moment |x_i⊥| (μB) must stay below ``max_residual``; otherwise λ ×
``lambda_factor`` (≤ ``lambda_max``) is rerun in the same job folder, restarting from its
``outdir`` (startingwfc/startingpot = 'file').
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
from otf_spin.units import RYDBERG

#: ntypx of a stock pw.x (Modules/parameters.f90): the most species, hence atoms, per job
NTYPX = 10
#: label suffixes after a one- or two-letter element symbol (3 characters in all)
_SUFFIXES = "1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ"

SCHEMA = Section({
    "command": Key("str", "launch command run in each job directory",
                   "mpirun -np 2 pw.x -in pw.in"),
    **job_keys(3600.0),
    "pseudo_dir": Key("folder", "pseudopotential folder (relative: to the YAML file)",
                      "/usr/share/espresso/pseudo"),
    "pseudopotentials": Key("mapping", "species -> UPF file", {"Fe": "Fe.pbe-nd-rrkjus.UPF"}),
    "ecutwfc": Key("float", "wave-function cutoff (Ry)", 30.0, minimum=1.0),
    "ecutrho": Key("float", "density cutoff (Ry)", 240.0, minimum=1.0),
    "kpoints": Key("list", "Monkhorst-Pack mesh", [6, 6, 6], item=Key("int", "n", minimum=1),
                   length=3),
    "degauss": Key("float", "Marzari-Vanderbilt smearing width (Ry)", 0.02, minimum=0.0),
    **ramp_keys(20.0, 20000.0, "Ry/μB², as written to pw.in", 0.02),
    "conv_thr": Key("float", "SCF convergence threshold (Ry)", 1e-8, minimum=0.0),
    "mixing_beta": Key("float", "SCF mixing", 0.2, minimum=0.0, maximum=1.0),
    "volume_factor": Key("str", "λ_eff = λΩ/N_FFT: auto (by the pw.x version printed), "
                         "always, never", "auto", choices=("auto", "always", "never")),
    "max_species": Key("int", "most species pw.x accepts (its compile-time ntypx; one per "
                       "atom)", NTYPX, minimum=1),
    "moment": MOMENT_KEY,
}, "Quantum ESPRESSO pw.x, constrained noncollinear")

MASSES = {"Fe": 55.845, "Co": 58.933, "Ni": 58.693, "Mn": 54.938, "Cr": 51.996}
_F = r"[-+]?\d+\.\d+(?:[Ee][-+]?\d+)?"


def species_labels(species) -> list[str]:
    """One pw.x species label per atom, unique within 3 characters: the element symbol
    and a counter per element (Fe1 … Fe9, Fe0, FeA … FeZ; H1 … H99)."""
    count, labels = {}, []
    for s in map(str, species):
        k = count.get(s, 0)
        count[s] = k + 1
        if len(s) == 1 and k < 99:
            labels.append(f"{s}{k + 1}")
        elif len(s) == 2 and k < len(_SUFFIXES):
            labels.append(s + _SUFFIXES[k])
        else:
            raise ValueError(f"more than {99 if len(s) == 1 else len(_SUFFIXES)} {s} atoms "
                             f"cannot get distinct 3-character pw.x labels")
    return labels


def parse_pw_output(text: str, n_atoms: int) -> dict:
    """Energy (Ry), moments and targets (n, 3) μB, volume (bohr³), FFT grid, version, the
    λ pw.x read (Ry/μB²) and its last printed "constraint energy" λ Σ|m - m⁰|² (Ry, with
    the λ as read, no volume factor); None where not printed."""
    energies = re.findall(rf"^!\s+total energy\s+=\s+({_F}) Ry", text, re.M)
    if not energies:
        raise ValueError("no '!    total energy' line in the pw.x output")
    version = re.search(r"Program PWSCF v\.(\d+)\.(\d+)(?:\.(\d+))?", text)
    fft = re.search(r"Dense\s+grid:.*FFT dimensions:\s*\(\s*(\d+),\s*(\d+),\s*(\d+)\)", text)
    volume = re.search(rf"unit-cell volume\s+=\s+({_F}) \(a\.u\.\)\^3", text)
    lam = re.findall(rf"^\s+lambda\s+=\s+({_F}) Ry", text, re.M)
    penalty = re.findall(rf"constraint energy \(Ry\) =\s+({_F})", text)
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
            "volume": float(volume.group(1)) if volume else None,
            "lambda": float(lam[-1]) if lam else None,
            "constraint_energy": float(penalty[-1]) if penalty else None}


def lambda_eff(lam: float, out: dict, mode: str = "auto") -> float:
    """λ (Ry/μB²) of the constraining potential pw.x applied, from the λ written and its
    output (``version``, ``volume`` bohr³, ``fft``): λΩ/N_FFT up to 7.3.1, λ after."""
    old = out["version"] is not None and out["version"] <= (7, 3, 1)
    if mode == "always" or (mode == "auto" and old):
        if out["fft"] is None or out["volume"] is None:
            raise ValueError("FFT grid or cell volume missing in the pw.x output")
        return lam * out["volume"] / float(np.prod(out["fft"]))
    return lam


def constrained_labels(out: dict, lam_eff: float, directions) -> dict:
    """Labels of one parsed constrained pw.x run (see the module doc): energy (eV, not
    yet relative to FM), fields (N, 3) eV/μB, penalty E_p (eV) and the residual
    perpendicular moments (N,) μB."""
    e = np.asarray(directions, float)
    x = out["moments"] - out["targets"]                         # μB
    fields = 2.0 * lam_eff * x * RYDBERG                       # internal = -constraining
    fields = transverse(fields, e)
    penalty = lam_eff * float(np.sum(x**2)) * RYDBERG
    x_perp = transverse(x, e)
    return {"energy": out["energy"] * RYDBERG + 2.0 * penalty, "fields": fields,
            "penalty": penalty, "residual": np.linalg.norm(x_perp, axis=1)}


class QEOracle(ConstrainedDFTOracle):
    name = "qe"
    implemented_properties = ("energy", "fields", "magmoms")
    schema = SCHEMA
    kept_outputs = ("pw.in", "job.out", "job.err")

    @classmethod
    def check_config(cls, block):
        """pseudo_dir and every pseudopotential file exist (pw.x would otherwise look in
        $ESPRESSO_PSEUDO or ~/espresso/pseudo, or fail at the first job)."""
        folder = block["pseudo_dir"]
        if not os.path.isdir(folder):
            raise ConfigError(f"pseudo_dir: folder {folder!r} not found")
        for species, name in block["pseudopotentials"].items():
            if not os.path.isfile(os.path.join(folder, str(name))):
                raise ConfigError(f"pseudopotentials.{species}: file {name!r} not found in "
                                  f"pseudo_dir {folder!r}")

    @classmethod
    def from_config(cls, block, context=None):
        n, limit = (context or {}).get("n_atoms"), block["max_species"]
        if n is not None and n > limit:
            raise ConfigError(f"oracle: the system has {n} atoms but pw.x allows {limit} species "
                              f"(one per constrained atom; ntypx in Modules/parameters.f90): use "
                              f"a cell of at most {limit} atoms, or rebuild pw.x with a larger "
                              f"ntypx and set oracle.max_species")
        return super().from_config(block, context)

    def check_size(self, system, job: str = "qe") -> None:
        """One-line failure, before any launch, for cells with more atoms than pw.x has
        species (one species per constrained atom)."""
        limit = self.cfg.get("max_species", NTYPX)
        if len(system) > limit:
            raise OracleFailure(job, "other",
                                f"{len(system)} atoms need {len(system)} pw.x species (moments "
                                f"are constrained per species) but pw.x allows {limit} "
                                f"(ntypx in Modules/parameters.f90): label cells of at most "
                                f"{limit} atoms, or rebuild pw.x with a larger ntypx and set "
                                f"max_species")

    def _write(self, system, directory, directions, lam, restart=False):
        n = len(system)
        job = os.path.basename(directory)
        self.check_size(system, job)
        missing = sorted(set(system.species) - set(self.cfg["pseudopotentials"]))
        if missing:
            raise OracleFailure(job, "other", f"no pseudopotential given for {missing}")
        try:
            labels = species_labels(system.species)
        except ValueError as exc:
            raise OracleFailure(job, "other", str(exc)) from None
        theta = np.degrees(np.arccos(np.clip(directions[:, 2], -1, 1)))
        phi = np.degrees(np.arctan2(directions[:, 1], directions[:, 0]))
        c = self.cfg
        lines = ["&CONTROL", "  calculation = 'scf'", "  prefix = 'otf'", "  outdir = './tmp'",
                 f"  pseudo_dir = '{c['pseudo_dir']}'", "/", "&SYSTEM", "  ibrav = 0",
                 f"  nat = {n}", f"  ntyp = {n}", f"  ecutwfc = {c['ecutwfc']}",
                 f"  ecutrho = {c['ecutrho']}", "  occupations = 'smearing'",
                 "  smearing = 'mv'", f"  degauss = {c['degauss']}", "  noncolin = .true.",
                 "  nosym = .true.", "  constrained_magnetization = 'atomic'",
                 f"  lambda = {lam:g}", "  report = 1"]
        for i in range(n):
            lines += [f"  starting_magnetization({i + 1}) = {system.magnitudes[i]:.6f}",
                      f"  angle1({i + 1}) = {theta[i]:.8f}", f"  angle2({i + 1}) = {phi[i]:.8f}"]
        lines += ["/", "&ELECTRONS", f"  conv_thr = {c['conv_thr']}",
                  f"  mixing_beta = {c['mixing_beta']}"]
        if restart:
            lines += ["  startingwfc = 'file'", "  startingpot = 'file'"]
        lines += ["/", "ATOMIC_SPECIES"]
        for label, s in zip(labels, system.species):
            lines.append(f"  {label} {MASSES.get(s, 1.0)} {c['pseudopotentials'][s]}")
        lines.append("CELL_PARAMETERS angstrom")
        lines += ["  " + " ".join(f"{x:.10f}" for x in row) for row in system.cell]
        lines.append("ATOMIC_POSITIONS angstrom")
        lines += [f"  {label} " + " ".join(f"{x:.10f}" for x in p)
                  for label, p in zip(labels, system.positions)]
        lines += ["K_POINTS automatic", " ".join(map(str, c["kpoints"])) + " 0 0 0", ""]
        with open(os.path.join(directory, "pw.in"), "w") as handle:
            handle.write("\n".join(lines))
        return {}

    def _read(self, system, directory, lam):
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
        out["lambda_eff"] = lambda_eff(lam, out, self.cfg["volume_factor"])
        return out

    def lambda_eff(self, out) -> float:
        """λ of the constraining potential actually applied (Ry/μB²) at the initial λ."""
        return lambda_eff(self.cfg["lambda"], out, self.cfg["volume_factor"])

    def compute(self, system, properties=None):
        self.check_properties(properties)
        self.check_size(system)
        z = np.tile([0.0, 0.0, 1.0], (len(system), 1))
        lam0 = self.cfg["lambda"]

        def reference():                    # FM along z, same constraint, labelled alike
            out = self.run_job(system, lambda s, d: self._write(s, d, z, lam0),
                               lambda s, d: self._read(s, d, lam0))
            return constrained_labels(out, out["lambda_eff"], z)["energy"]

        e_fm = self.fm_energy(system, reference)
        e = system.directions
        lam_of = {}

        def write(s, d, lam, restart):
            lam_of[d] = lam
            return self._write(s, d, e, lam, restart)

        out = self.constrained_run(
            system, write, lambda s, d: self._read(s, d, lam_of[d]),
            lambda o: constrained_labels(o, o["lambda_eff"], e)["residual"].max())
        labels = constrained_labels(out, out["lambda_eff"], e)
        magmoms = e * np.linalg.norm(out["targets"], axis=1)[:, None]
        return {"energy": labels["energy"] - e_fm, "fields": labels["fields"],
                "magmoms": magmoms,
                "info": dict(out["info"], lambda_eff=out["lambda_eff"],
                             penalty=labels["penalty"],
                             max_residual_moment=float(labels["residual"].max()),
                             achieved_moments=out["moments"].tolist(),
                             net_torque=self.net_torque(magmoms, labels["fields"]),
                             pw_version=".".join(map(str, out["version"] or ())))}
