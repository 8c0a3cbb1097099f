"""The binarised Fashion-MNIST committee machine of paper 000 (Eq. 7, 8) and its trainers."""

from committee.errors import CommitteeError
from committee.solutions import Solutions, load_solutions, save_solutions

__all__ = ["CommitteeError", "Solutions", "load_solutions", "save_solutions"]
