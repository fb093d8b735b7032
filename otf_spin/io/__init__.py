"""File formats: YAML configuration, extxyz data, HDF5 (H5MD) output, foreign formats."""
