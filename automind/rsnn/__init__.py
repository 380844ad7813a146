"""Differentiable (torch) spiking forward models: MK1 in discrete time, surrogate gradients,
differentiable features, sign-preserving optimisers and gradient fits
(``shared/spec/rsnn.md``; docs/rsnn.md).

Imports are lazy so that ``import automind.rsnn`` does not load torch.
"""

from .._lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, {
    "ExpAdam": ("automind.rsnn.optim", "ExpAdam"),
    "ExpSGD": ("automind.rsnn.optim", "ExpSGD"),
    "TorchMK1": ("automind.rsnn.mk1", "TorchMK1"),
    "fit_theta": ("automind.rsnn.fit", "fit_theta"),
    "FitResult": ("automind.rsnn.fit", "FitResult"),
    "fit_weights": ("automind.rsnn.weights", "fit_weights"),
    "WeightFitResult": ("automind.rsnn.weights", "WeightFitResult"),
})
