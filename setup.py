"""Build the Cython kernels of cython_ext/ into otf_spin._ext.

Every compiled kernel has a pure-Python twin in otf_spin/kernels/; if a kernel
cannot be built the package still works (slowly) and says so on import.
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extra_compile_args = ["-O3"] if os.name != "nt" else []
extra_link_args = []
if os.environ.get("OTF_SPIN_OPENMP", "1") != "0" and os.name != "nt":
    # OpenMP threads in the field and integrator loops (OMP_NUM_THREADS); set
    # OTF_SPIN_OPENMP=0 to build without (e.g. compilers lacking -fopenmp)
    extra_compile_args.append("-fopenmp")
    extra_link_args.append("-fopenmp")

extensions = [
    Extension(
        "otf_spin._ext." + os.path.splitext(os.path.basename(path))[0],
        [path],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )
    for path in sorted(glob.glob("cython_ext/*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
