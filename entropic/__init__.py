"""Model-agnostic entropic optimizers, focusing schedules, partial local entropy, local energy, and the
sampling estimators of local entropy (``entropic.smc``: their SMC over Δ; ``entropic.committee_sampling``:
committee machines; ``entropic.module_sampling``: any nn.Module; ``entropic.committee_estimator``: the
committee's EP-guided importance sampler)."""

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.schedules import Constant, Cosine, Exponential, Schedule
from localentropy.entropic.local_energy import LocalEnergy, classification_error, local_energy
from localentropy.entropic.smc import SampledLocalEntropy
from localentropy.entropic.committee_sampling import (DirectEstimate, committee_direct_monte_carlo,
                                                      committee_local_entropy)
from localentropy.entropic.module_sampling import local_entropy
from localentropy.entropic.committee_estimator import CommitteeEstimate, committee_local_entropy_is
from localentropy.entropic.params import select_parameters
from localentropy.entropic.partial import PLA, PLEA
from localentropy.entropic.signal import LayerSignal, LayerStats
from localentropy.entropic.esgd import EntropySGD
from localentropy.entropic.sam import SAM
from localentropy.entropic.replicated import (Replicated, auto_gamma0, barycenter, coupling_grad, make_replicas,
                                 replica_batch_indices, replica_distances, replica_seed)

__all__ = ["EntropicError", "Schedule", "Constant", "Exponential", "Cosine"]
__all__ += ["PLA", "PLEA", "local_energy", "LocalEnergy", "classification_error", "LayerSignal", "LayerStats",
            "select_parameters"]
__all__ += ["EntropySGD", "SAM", "Replicated", "barycenter", "coupling_grad", "replica_distances", "auto_gamma0",
            "make_replicas", "replica_seed", "replica_batch_indices"]
__all__ += ["local_entropy", "committee_local_entropy", "committee_direct_monte_carlo", "SampledLocalEntropy", "DirectEstimate",
            "committee_local_entropy_is", "CommitteeEstimate"]
