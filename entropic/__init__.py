"""Model-agnostic entropic optimizers, focusing schedules, partial local entropy and local energy."""

from entropic.errors import EntropicError
from entropic.schedules import Constant, Cosine, Exponential, Schedule

__all__ = ["EntropicError", "Schedule", "Constant", "Exponential", "Cosine"]
