"""Belief Propagation local entropy of committee-machine solutions (numpy, numba, scipy only)."""
