"""File-based oracles, split as ASE's GenericFileIOCalculator: a *template* (what to
write and what to read) and a *profile* (how to launch, e.g. ``mpirun -np 16 vasp_ncl``).

Every job runs in its own directory ``<workdir>/<name>-<NNNNNN>``, kept for inspection.
Launch commands may use ``{ranks}``: the ranks of the job's group in an MPI ensemble
(``replicas.ranks_per_oracle_job``, 1 otherwise).
Failures are typed :class:`~otf_spin.core.OracleFailure` (exit, timeout, nan,
parse, convergence) naming the job directory.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time

import numpy as np

from otf_spin.config.engine import Key
from otf_spin.core import NonFiniteError, OracleFailure
from otf_spin.oracles.base import Oracle

LOG = logging.getLogger("otf_spin.oracles")


def job_keys(timeout: float) -> dict:
    """The schema keys every file-based oracle shares: timeout (s) and workdir."""
    return {"timeout": Key("quantity", "wall-clock limit per job", timeout, unit="s",
                           dimension="walltime", minimum=0.001),
            "workdir": Key("str", "folder of the job directories (kept)", "oracle_jobs")}


def stop_group(process, grace: float = 5.0) -> None:
    """Stop the job ``process`` (a session leader) and everything it started: SIGTERM to
    its process group (an MPI launcher forwards it to its ranks, a DFT code may flush its
    files), then SIGKILL to what is left of the group after the leader exited or after
    ``grace`` s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:          # the whole group is gone
        pass
    process.wait()


class Profile:
    """How to launch a job: a command line (str, run by the shell, or argv list), a
    wall-clock timeout (s) and extra environment variables."""

    def __init__(self, command, timeout: float = 3600.0, env: dict | None = None):
        self.command, self.timeout, self.env = command, float(timeout), dict(env or {})

    def run(self, directory: str, job: str, substitutions: dict | None = None) -> float:
        """Run in ``directory``; returns the wall time (s). Kills the whole process group
        on timeout; stdout/stderr go to ``job.out``/``job.err`` in the job directory."""
        command = self.command
        if isinstance(command, str):
            command = command.format(**(substitutions or {}))
        start = time.perf_counter()
        with open(os.path.join(directory, "job.out"), "wb") as out, \
                open(os.path.join(directory, "job.err"), "wb") as err:
            process = subprocess.Popen(command, shell=isinstance(command, str), cwd=directory,
                                       stdout=out, stderr=err, start_new_session=True,
                                       env={**os.environ, **self.env})
            try:
                code = process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                stop_group(process)
                raise OracleFailure(job, "timeout", f"no result after {self.timeout:g} s "
                                    f"(killed; see {directory})") from None
            except BaseException:       # Ctrl-C, SIGTERM (cli), an error: no orphan job
                stop_group(process)
                raise
        if code != 0:
            tail = open(os.path.join(directory, "job.err"), errors="replace").read()[-300:]
            raise OracleFailure(job, "exit", f"command exited with status {code} "
                                f"({' '.join(shlex.quote(c) for c in command) if isinstance(command, list) else command}); "
                                f"stderr tail: {tail.strip()!r}")
        return time.perf_counter() - start


class FileOracle(Oracle):
    """Base of file-based oracles: subclasses implement ``write_inputs`` and
    ``read_outputs``; the profile launches the code."""

    def __init__(self, profile: Profile, workdir: str = "oracle_jobs"):
        self.profile, self.workdir = profile, workdir
        self._counter = None

    def write_inputs(self, system, directory: str) -> dict:
        """Write input files; returns substitutions for the command line."""
        raise NotImplementedError

    def read_outputs(self, system, directory: str) -> dict:
        """Parse the results dict (internal units) from the job directory."""
        raise NotImplementedError

    def _next_job(self) -> str:
        os.makedirs(self.workdir, exist_ok=True)
        if self._counter is None:
            taken = [int(name.rsplit("-", 1)[1]) for name in os.listdir(self.workdir)
                     if name.startswith(self.name + "-") and name.rsplit("-", 1)[1].isdigit()]
            self._counter = max(taken, default=0)
        self._counter += 1
        return os.path.join(self.workdir, f"{self.name}-{self._counter:06d}")

    #: files a rerun in the same job directory keeps as ``<name>.<k>`` (k = earlier run)
    kept_outputs: tuple[str, ...] = ("job.out", "job.err")

    def run_job(self, system, write=None, read=None, directory: str | None = None) -> dict:
        """One job: write inputs, launch, parse; typed failures. ``write``/``read``
        default to :meth:`write_inputs`/:meth:`read_outputs`. A fresh directory unless
        ``directory`` (an earlier job's) is given: then the job is rerun there (a restart
        from that run's files), the earlier run's :attr:`kept_outputs` copied to
        ``<name>.<k>`` first (k = 1, 2, ... in order of the runs)."""
        write, read = write or self.write_inputs, read or self.read_outputs
        if directory is None:
            directory = self._next_job()
            os.makedirs(directory)
        else:
            self._keep_outputs(directory)
        job = os.path.basename(directory)
        substitutions = {"ranks": self.ranks, **(write(system, directory) or {})}
        wall = self.profile.run(directory, job, substitutions)

        try:
            results = read(system, directory)
        except OracleFailure:
            raise
        except NonFiniteError as exc:
            raise OracleFailure(job, "nan", str(exc)) from None
        except Exception as exc:      # any parser error is a typed failure of this job
            raise OracleFailure(job, "parse", f"{type(exc).__name__}: {exc}") from None
        for key in ("energy", "fields"):
            if key in results and not np.all(np.isfinite(results[key])):
                raise OracleFailure(job, "nan", f"'{key}' is not finite")
        results.setdefault("info", {}).update(job_directory=os.path.abspath(directory),
                                              wall_time=wall, job=job)
        return results

    def _keep_outputs(self, directory: str) -> int:
        """Copy the last run's :attr:`kept_outputs` to ``<name>.<k>``; returns k."""
        import shutil

        k = 1
        while any(os.path.exists(os.path.join(directory, f"{name}.{k}"))
                  for name in self.kept_outputs):
            k += 1
        for name in self.kept_outputs:
            path = os.path.join(directory, name)
            if os.path.exists(path):
                shutil.copy2(path, f"{path}.{k}")
        return k

    def compute(self, system, properties=None) -> dict:
        self.check_properties(properties)
        return self.run_job(system)


def ramp_keys(lam: float, lam_max: float, unit: str, residual: float) -> dict:
    """Schema keys of the penalty weight λ and its ramp (shared by the DFT backends):
    initial λ, factor, largest λ (in the code's ``unit``) and the largest accepted
    residual perpendicular moment (μB)."""
    return {
        "lambda": Key("float", f"initial penalty weight λ ({unit})", lam, minimum=0.0),
        "lambda_factor": Key("float", "λ multiplier when the constraint is poor (1: no ramp)",
                             2.0, minimum=1.0),
        "lambda_max": Key("float", f"largest λ tried ({unit})", lam_max, minimum=0.0),
        "max_residual": Key("quantity", "largest accepted residual moment perpendicular "
                            "to its target direction", residual, unit="μB",
                            dimension="moment", minimum=0.0),
    }


class ConstrainedDFTOracle(FileOracle):
    """A file-based constrained-DFT oracle configured by a validated settings dict, with
    the energy of the collinear FM reference computed once per structure (paper Eq. 37)."""

    def __init__(self, profile: Profile, settings: dict, workdir: str = "oracle_jobs"):
        super().__init__(profile, workdir)
        self.cfg = settings
        self.moment = settings.get("moment", 2.2)   # μB for frames giving only directions
        self._fm = {}

    @classmethod
    def check_config(cls, block: dict) -> None:
        """Semantic checks beyond the schema (subclasses raise ConfigError)."""

    @classmethod
    def from_config(cls, block, context=None):
        cls.check_config(block)
        return cls(Profile(block["command"], block["timeout"]), dict(block), block["workdir"])

    def settings(self):
        return {"type": self.name, **self.cfg}

    @staticmethod
    def net_torque(magmoms, fields) -> float:
        """|Σ_i m_i × B_i| / max_i |m_i × B_i|: zero for exact labels without spin-orbit
        coupling (a global spin rotation costs nothing); a few % or more flags an SCF
        not converged tightly enough for the fields (magmoms μB, fields eV/μB, (N, 3))."""
        torques = np.cross(magmoms, fields)
        largest = float(np.linalg.norm(torques, axis=1).max())
        return float(np.linalg.norm(torques.sum(axis=0))) / largest if largest > 0 else 0.0

    def fm_energy(self, system, run_reference) -> float:
        """E of the FM reference of ``system``'s structure; ``run_reference()`` computes it
        (once per cell, positions, species and moments)."""
        h = system.digest(("cell", "positions", "magnitudes"))
        h.update(" ".join(system.species).encode())
        key = h.hexdigest()
        if key not in self._fm:
            self._fm[key] = float(run_reference())
        return self._fm[key]

    def constrained_run(self, system, write, read, residual) -> dict:
        """The constrained job with the λ ramp: ``write(system, directory, lam, restart)``
        writes the inputs (``restart``: reuse the previous run's wavefunctions and
        density, found in the same directory), ``read(system, directory)`` parses,
        ``residual(out)`` is the largest perpendicular moment (μB) left. While it exceeds
        ``max_residual``, λ × ``lambda_factor`` (≤ ``lambda_max``) is rerun in the same
        job directory; every step is logged and appended to ``ramp.log`` there. Returns
        the last results, with info ``lambda_used`` and ``ramp`` [(λ, residual), ...]."""
        cfg, lam, directory, history = self.cfg, self.cfg["lambda"], None, []
        while True:
            restart = directory is not None
            out = self.run_job(system, lambda s, d: write(s, d, lam, restart), read, directory)
            directory = out["info"]["job_directory"]
            res = float(residual(out))
            history.append((lam, res))
            ok = res <= cfg["max_residual"]
            nxt = lam * cfg["lambda_factor"]
            stop = ok or cfg["lambda_factor"] == 1.0 or nxt > cfg["lambda_max"]
            line = (f"lambda {lam:g}{' (restart)' if restart else ''}: residual "
                    f"{res:.5f} μB, limit {cfg['max_residual']:g} μB: "
                    + ("accepted" if ok else "failed" if stop else f"rerun with {nxt:g}"))
            LOG.info("%s: %s", out["info"]["job"], line)
            with open(os.path.join(directory, "ramp.log"), "a") as handle:
                handle.write(line + "\n")
            if ok:
                break
            if stop:
                raise OracleFailure(out["info"]["job"], "convergence",
                                    f"constraint not reached: residual moment {res:.4f} μB > "
                                    f"{cfg['max_residual']:g} μB at lambda {lam:g} "
                                    f"(lambda_max {cfg['lambda_max']:g})")
            lam = nxt
        out["info"].update(lambda_used=lam, ramp=history)
        return out
