"""Flatness measures practitioners use (Hessian spectrum, PAC-Bayes noise bounds, SAM sharpness), beside local entropy."""

from localentropy.flatness.errors import FlatnessError
from localentropy.flatness.hessian import (HessianEigen, HessianTrace, hessian_top_eigenvalue, hessian_trace,
                                           hessian_vector_product, hutchinson, lanczos, power_iteration)
from localentropy.flatness.pacbayes import PacBayesSigma, pacbayes_sigma
from localentropy.flatness.sharpness import Sharpness, adaptive_sharpness, sam_sharpness

__all__ = ["FlatnessError", "HessianEigen", "HessianTrace", "hessian_top_eigenvalue", "hessian_trace",
           "hessian_vector_product", "lanczos", "power_iteration", "hutchinson", "PacBayesSigma", "pacbayes_sigma",
           "Sharpness", "sam_sharpness", "adaptive_sharpness"]
