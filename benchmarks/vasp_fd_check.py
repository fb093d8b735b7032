"""First check of the VASP backend on your machine: the field label against a finite
difference of constrained energies (the same check tests/test_qe_oracle.py makes with
real pw.x).

2-atom cubic bcc Fe cell (a = 2.83 Å), spin 1 along z, spin 2 canted by θ in the xz
plane. Through the backend (``type: vasp``): E(θ - δ), E(θ), E(θ + δ) and the field label
B at θ. With e(θ) = (sin θ, 0, cos θ) and |m| the labelled moment of spin 2,
B·∂e/∂θ = -(1/|m|) ∂E/∂θ ≈ -(E(θ+δ) - E(θ-δ)) / (2δ |m|). Without spin-orbit coupling
a global spin rotation costs nothing, so the torques cancel: Σ_i m_i × B_i = 0 (the
"net torque" column, against the largest single torque). Prints a table; exits 1 when
field and finite difference disagree by more than --tolerance (relative).

    python benchmarks/vasp_fd_check.py --potcar-dir /apps/vasp/potpaw_PBE \
        --command "mpirun -np 16 vasp_ncl" --kpoints 12 12 12
    python benchmarks/vasp_fd_check.py --fake      # the fake VASP of the tests, seconds

Job folders stay in --workdir (INCAR, OSZICAR, OUTCAR, ramp.log of each run).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "..", "tests", "fixtures", "fake_vasp")


def canted(theta: float):
    from otf_spin.system import bulk

    system = bulk("bcc", 2.83, (1, 1, 1))
    system.set_directions([[0.0, 0.0, 1.0], [np.sin(theta), 0.0, np.cos(theta)]])
    return system


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fake", action="store_true",
                        help="use the fake VASP of the tests (no VASP needed)")
    parser.add_argument("--command", default="mpirun -np 4 vasp_ncl",
                        help="VASP launch line run in each job folder")
    parser.add_argument("--potcar-dir", help="folder with Fe/POTCAR (potpaw_PBE)")
    parser.add_argument("--potcar-variant", default="Fe", help="POTCAR folder for Fe")
    parser.add_argument("--kpoints", type=int, nargs=3, default=[12, 12, 12])
    parser.add_argument("--encut", type=float, default=500.0, help="eV")
    parser.add_argument("--lambda", dest="lam", type=float, default=10.0, help="eV/μB²")
    parser.add_argument("--lambda-max", type=float, default=100.0, help="eV/μB²")
    parser.add_argument("--max-residual", type=float, default=0.01, help="μB")
    parser.add_argument("--theta", type=float, default=30.0, help="canting of spin 2, deg")
    parser.add_argument("--delta", type=float, default=3.0, help="finite-difference step, deg")
    parser.add_argument("--tolerance", type=float, default=0.15, help="relative")
    parser.add_argument("--workdir", default="vasp_fd_check")
    parser.add_argument("--timeout", type=float, default=86400.0, help="s per job")
    args = parser.parse_args(argv)

    from otf_spin.oracles import from_block

    if args.fake:
        command = f"{sys.executable} {os.path.join(FAKE, 'fake_vasp.py')}"
        potcar_dir = os.path.join(FAKE, "potpaw")
    else:
        if not args.potcar_dir:
            parser.error("--potcar-dir is required (or --fake)")
        command, potcar_dir = args.command, args.potcar_dir
    oracle = from_block({"type": "vasp", "command": command, "potcar_dir": potcar_dir,
                         "potcar_variants": {"Fe": args.potcar_variant},
                         "kpoints": list(args.kpoints), "lambda": args.lam,
                         "lambda_max": args.lambda_max, "max_residual": args.max_residual,
                         "incar": {"ENCUT": args.encut}, "workdir": args.workdir,
                         "timeout": args.timeout})
    theta, delta = np.radians(args.theta), np.radians(args.delta)
    rows = []
    for angle in (theta - delta, theta, theta + delta):
        result = oracle.compute(canted(angle))
        tangent = np.array([np.cos(angle), 0.0, -np.sin(angle)])          # ∂e/∂θ
        rows.append({"theta": np.degrees(angle), "energy": result["energy"],
                     "net_torque": result["info"]["net_torque"],
                     "field": float(result["fields"][1] @ tangent),
                     "moment": float(np.linalg.norm(result["magmoms"][1])),
                     "lambda": result["info"]["lambda_used"],
                     "residual": result["info"]["max_residual_moment"],
                     "penalty": result["info"]["penalty"], "job": result["info"]["job"]})
    print(f"{'theta (deg)':>11} {'E - E_FM (meV)':>15} {'B·de/dθ (meV/μB)':>17} "
          f"{'|m| (μB)':>9} {'LAMBDA':>7} {'residual (μB)':>14} {'E_p (meV)':>10} "
          f"{'net/max torque':>15}  job")
    for r in rows:
        print(f"{r['theta']:11.3f} {1e3 * r['energy']:15.4f} {1e3 * r['field']:17.4f} "
              f"{r['moment']:9.4f} {r['lambda']:7g} {r['residual']:14.2e} "
              f"{1e3 * r['penalty']:10.4f} {r['net_torque']:15.2e}"
              f"  {r['job']}")
    mid = rows[1]
    fd = -(rows[2]["energy"] - rows[0]["energy"]) / (2 * delta) / mid["moment"]
    error = abs(mid["field"] - fd) / max(abs(fd), 1e-12)
    print(f"\nfield label at θ = {args.theta:g}°: {1e3 * mid['field']:.4f} meV/μB; "
          f"finite difference -(E(θ+δ) - E(θ-δ))/(2δ|m|): {1e3 * fd:.4f} meV/μB; "
          f"relative difference {error:.3%} (tolerance {args.tolerance:.0%})")
    ok = error <= args.tolerance and np.sign(mid["field"]) == np.sign(fd)
    print("OK: the backend's field and energy labels agree" if ok else
          "MISMATCH: field and energy labels disagree (check LAMBDA, RWIGS, convergence)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
