"""The column DMF through torchdiffeq: adaptive solvers (dopri5) and the adjoint method.

torchdiffeq is an optional dependency (``pip install automind[columns]``); without it these
functions raise a UserError saying so.
"""

from __future__ import annotations

from .dmf import DMFParams, _batch_shape, derivatives, initial_state, transfer
from ..errors import UserError


def require_torchdiffeq():
    try:
        import torchdiffeq
    except ImportError:
        raise UserError("this solver needs torchdiffeq, which is not installed; "
                        "run `pip install automind[columns]` (or `pip install torchdiffeq`)") from None
    return torchdiffeq


def _module_class():
    import torch

    class ColumnField(torch.nn.Module):
        """d(I, H)/dt as an nn.Module (the adjoint needs one); the input is piecewise constant
        on the grid of ``dt`` (step n covers [n dt, (n+1) dt))."""

        def __init__(self, W, drive, params, inputs, dt):
            super().__init__()
            self.W, self.drive, self.params, self.inputs, self.dt = W, drive, params, inputs, dt

        def forward(self, t, y):
            U = None
            if self.inputs is not None:
                n = min(int(float(t.detach()) / self.dt + 1e-9), len(self.inputs) - 1)
                U = self.inputs[n]
            return derivatives(*y[:2], self.W, self.drive, U, self.params, *y[2:])

    return ColumnField


def integrate_odeint(W, drive, duration: float, params: DMFParams = DMFParams(), inputs=None,
                     dt: float = 1e-4, record_every: int = 1, method: str = "dopri5",
                     adjoint: bool = False, rtol: float = 1e-7, atol: float = 1e-9, state=None,
                     options: dict | None = None, batch: int | None = None):
    """Rates (T_rec, B, P) at every ``record_every`` ``dt`` up to ``duration``, solved by
    torchdiffeq's ``method``. ``inputs``: None or a (steps, B, P) tensor, constant per ``dt``.
    With ``adjoint`` the gradient comes from torchdiffeq's adjoint ODE (memory O(1) in time)
    with respect to W, drive and the inputs when they require grad."""
    import torch

    tdq = require_torchdiffeq()
    if params.sigma > 0:
        raise UserError("torchdiffeq solvers integrate the noise-free DMF; set sigma = 0 or use "
                        "euler / rk4")
    steps = int(round(duration / dt))
    if state is None:
        state = initial_state(_batch_shape(W, drive, batch), W.shape[-1], dtype=W.dtype,
                              device=W.device, adaptation=params.kappa > 0)
    field = _module_class()(W, drive, params, inputs, dt)
    t = torch.arange(0, steps + 1, record_every, dtype=W.dtype, device=W.device) * dt
    kwargs = dict(method=method, rtol=rtol, atol=atol, options=options)
    if adjoint:
        tracked = tuple(x for x in (W, drive, inputs) if x is not None and x.requires_grad)
        path = tdq.odeint_adjoint(field, tuple(state), t, adjoint_params=tracked, **kwargs)
    else:
        path = tdq.odeint(field, tuple(state), t, **kwargs)
    H = path[1] if len(path) == 2 else path[1] - path[2]
    return transfer(H[1:], params), tuple(x[-1] for x in path)
