"""A package without its compiled kernels says so: one warning at import naming every
kernel that fell back to its pure-Python twin; parity checks and speed benchmarks refuse
to run on twins."""
import os
import shutil
import subprocess
import sys

import pytest

import otf_spin
from otf_spin import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def unbuilt(tmp_path_factory):
    """A copy of the package with no compiled extension: its PYTHONPATH environment."""
    target = tmp_path_factory.mktemp("unbuilt")
    shutil.copytree(os.path.dirname(otf_spin.__file__), target / "otf_spin",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return dict(os.environ, PYTHONPATH=str(target), OTF_SPIN_PURE_PYTHON="0")


def python(env, *args, cwd=None):
    return subprocess.run([sys.executable, "-W", "default", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_import_names_every_missing_kernel_once(unbuilt, tmp_path):
    out = python(unbuilt, "-c", "import otf_spin, otf_spin.dynamics.llg, otf_spin.descriptors;"
                 " from otf_spin import kernels; print(kernels.missing())",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path) not in out.stdout
    assert out.stdout.strip() == repr(list(kernels.KERNELS))
    warnings = [line for line in out.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warnings) == 1, out.stderr
    assert all(name in warnings[0] for name in kernels.KERNELS)
    assert "pure-Python twins" in warnings[0]


def test_parity_checks_and_benchmarks_refuse_twins(unbuilt, tmp_path):
    out = python(unbuilt, "-c", "from otf_spin import kernels; kernels.compiled('soso', "
                 "required=True)", cwd=tmp_path)
    assert out.returncode != 0
    assert "compiled kernel otf_spin._ext.soso is not available" in out.stderr
    bench = python(unbuilt, os.path.join(ROOT, "benchmarks", "llg_speed.py"), "--no-spirit",
                   "--cells", "2", "--steps", "2", "--threads", "1", cwd=tmp_path)
    assert bench.returncode != 0
    assert "refusing to print speed rows" in bench.stderr
    assert bench.stdout == ""                  # not one row timed on twins


def test_this_package_warns_exactly_when_a_kernel_is_missing():
    """Silent when every kernel is built (and when twins are forced on purpose)."""
    code = "import otf_spin.dynamics.llg"
    for forced in ("0", "1"):
        out = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code],
                             capture_output=True, text=True,
                             env=dict(os.environ, OTF_SPIN_PURE_PYTHON=forced))
        expect_silent = forced == "1" or not kernels.missing()
        assert (out.returncode == 0) == expect_silent, out.stderr
