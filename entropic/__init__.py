"""Model-agnostic entropic optimizers, focusing schedules, partial local entropy and local energy."""

from entropic.errors import EntropicError
from entropic.schedules import Constant, Cosine, Exponential, Schedule
from entropic.local_energy import LocalEnergy, classification_error, local_energy
from entropic.params import select_parameters
from entropic.partial import PLA, PLEA
from entropic.signal import LayerSignal, LayerStats
from entropic.esgd import EntropySGD
from entropic.sam import SAM
from entropic.replicated import (Replicated, auto_gamma0, barycenter, coupling_grad, make_replicas,
                                 replica_batch_indices, replica_distances, replica_seed)

__all__ = ["EntropicError", "Schedule", "Constant", "Exponential", "Cosine"]
__all__ += ["PLA", "PLEA", "local_energy", "LocalEnergy", "classification_error", "LayerSignal", "LayerStats",
            "select_parameters"]
__all__ += ["EntropySGD", "SAM", "Replicated", "barycenter", "coupling_grad", "replica_distances", "auto_gamma0",
            "make_replicas", "replica_seed", "replica_batch_indices"]
