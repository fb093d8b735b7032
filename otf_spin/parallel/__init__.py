"""Replicas over MPI ranks (mpi4py, optional): communicators, replica layout, parallel
tempering and oracle jobs spread over rank groups. The run loop itself is
:mod:`otf_spin.runner`; without mpi4py, or on one rank, everything runs serially."""
from otf_spin.parallel.comm import SerialComm, owned, world

__all__ = ["SerialComm", "owned", "world"]
