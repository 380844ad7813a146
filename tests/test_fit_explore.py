"""Exploration proposals: steps away from another member, mirrored into the prior box."""

import numpy as np

from automind.fit.explore import STEP, outward_proposals


def test_proposals_step_away_from_a_partner_and_stay_in_the_box():
    rng = np.random.default_rng(0)
    u = rng.uniform(-0.25, 0.25, size=(50, 3))  # steps of <= 0.5: no mirroring
    low, high = np.full(3, -1.0), np.full(3, 1.0)
    out = outward_proposals(u, 400, np.random.default_rng(1), low, high)
    assert out.shape == (400, 3) and (out > low).all() and (out < high).all()
    # inside the box nothing is mirrored: every proposal lies on a ray from some member
    # through another, beyond it, at z in STEP times their distance
    d = u[:, None, :] - u[None, :, :]                     # u_i - u_j
    for p in out[:20]:
        diff = p[None, None, :] - u[:, None, :]           # p - u_i
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.einsum("ijk,ijk->ij", diff, d) / np.einsum("ijk,ijk->ij", d, d)
        resid = np.linalg.norm(diff - z[..., None] * d, axis=2)
        ok = (resid < 1e-9) & (z >= STEP[0] - 1e-9) & (z <= STEP[1] + 1e-9)
        assert ok.any()


def test_proposals_leaving_the_box_are_mirrored_not_clipped():
    u = np.array([[0.9, 0.0], [0.1, 0.0]])  # stepping from the first away from the second
    low, high = np.full(2, -1.0), np.full(2, 1.0)
    out = outward_proposals(u, 2000, np.random.default_rng(2), low, high)
    first = out[np.abs(out[:, 0]) > 0.5]     # proposals from member 0 (from 1 they stay < 0.5)
    # 0.9 + z * 0.8 for z in [0.2, 1] reaches 1.06..1.7, mirrored to 0.94..0.3: no pile at 1
    assert (first[:, 0] < 1).all() and np.mean(first[:, 0] > 0.999) < 0.01
    assert first[:, 0].min() < 0.4
