"""File formats: extxyz data, H5MD output, per-atom arrays in HDF5, safe writes, UppASD."""
