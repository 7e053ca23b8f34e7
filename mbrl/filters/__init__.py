"""Components that shape model data: transition filters (``filter=``) and reward penalties (``penalty=``)."""

from mbrl.filters import reward_consistency  # noqa: F401  (importing registers the reward-consistency filter)
from mbrl.filters.base import FILTERS, FilterResult, TransitionFilter
from mbrl.filters.penalties import PENALTIES, RewardPenalty, ValuePenalty

__all__ = ["FILTERS", "PENALTIES", "FilterResult", "RewardPenalty", "TransitionFilter", "ValuePenalty"]
