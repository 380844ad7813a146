"""Summary features: one code path for simulations and recordings."""

from .sets import FEATURE_SETS, FeatureSet, compute_features, get_feature_set
from .spikedata import SpikeData

__all__ = ["FEATURE_SETS", "FeatureSet", "SpikeData", "compute_features", "get_feature_set"]
