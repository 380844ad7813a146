"""Differentiable (torch) spiking forward models: MK1 in discrete time, surrogate gradients,
differentiable features and sign-preserving optimisers (``shared/spec/rsnn.md``).

Imports are lazy so that ``import automind.rsnn`` does not load torch.
"""

from .._lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, {
    "ExpAdam": ("automind.rsnn.optim", "ExpAdam"),
    "ExpSGD": ("automind.rsnn.optim", "ExpSGD"),
})
