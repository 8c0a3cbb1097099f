"""The binarised Fashion-MNIST committee machine of paper 000 (Eq. 7, 8) and its trainers."""

from localentropy.committee.errors import CommitteeError
from localentropy.committee.evaluate import EnergyProfiles, local_energy_profiles, solution_errors
from localentropy.committee.loss import margin_loss
from localentropy.committee.model import CommitteeNet, errors, normalise, sign_output, surrogate_output
from localentropy.committee.presets import PRESETS, CommitteePreset, get_preset, parse_overrides
from localentropy.committee.solutions import Solutions, load_solutions, save_solutions
from localentropy.committee.train import TrainResult, restart_seed, train_committee

__all__ = [
    "CommitteeError",
    "CommitteeNet",
    "CommitteePreset",
    "EnergyProfiles",
    "PRESETS",
    "Solutions",
    "TrainResult",
    "errors",
    "get_preset",
    "load_solutions",
    "local_energy_profiles",
    "margin_loss",
    "normalise",
    "parse_overrides",
    "restart_seed",
    "save_solutions",
    "sign_output",
    "solution_errors",
    "surrogate_output",
    "train_committee",
]
