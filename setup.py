"""Build the Cython kernels of cython_ext/ into otf_spin._ext.

Every compiled kernel has a pure-Python twin in otf_spin/kernels/. The extensions are
optional: if one cannot be compiled (no C compiler, no Python headers, no OpenMP),
setuptools prints a warning and the installation goes on; the package then uses the
twins (10-100x slower) and says so, naming the kernels, when it is imported.
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

ext_modules = cythonize(
    extensions,
    language_level=3,
    compiler_directives={
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
    },
)
for extension in ext_modules:
    extension.optional = True    # a failed compile warns; the pure-Python twin is used
                                 # (set here: cythonize does not copy the attribute)

setup(ext_modules=ext_modules)
