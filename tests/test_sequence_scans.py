"""The pure-PyTorch scans against a naive per-step recurrence written out plainly here.

The recurrence runs in float64 (the truth); the scans run in float32 on the same numbers.
Relative error = ||scan - truth|| / ||truth||, on outputs and on the gradients of a random
linear loss with respect to every input; the bound is 1e-5 (issue 3).
"""

import pytest
import torch
import torch.nn.functional as F

from drama.sequence.selective_scan import selective_scan_chunked, selective_scan_sequential
from drama.sequence.ssd import segsum, ssd_chunked

TOL = 1e-5


def rel_err(a, b):
    """||a - b|| / ||b||; the absolute error where the truth is exactly zero (e.g. dA at L=1)."""
    diff = (a.double() - b.double()).norm().item()
    scale = b.double().norm().item()
    return diff / scale if scale > 0 else diff


def naive_ssd(x, dt, A, B, C, D, h0=None):
    """s_t = exp(dt_t A) s_{t-1} + dt_t x_t B_t^T;  y_t = s_t C_t + D x_t  (per head)."""
    b, L, h, p = x.shape
    g, n = B.shape[-2:]
    heads_per_group = h // g
    state = torch.zeros(b, h, p, n, dtype=x.dtype) if h0 is None else h0
    ys = []
    for t in range(L):
        Bt = B[:, t].repeat_interleave(heads_per_group, dim=1)  # (b, h, n)
        Ct = C[:, t].repeat_interleave(heads_per_group, dim=1)
        decay = torch.exp(dt[:, t] * A)  # (b, h)
        state = decay[:, :, None, None] * state + (
            dt[:, t, :, None, None] * x[:, t, :, :, None] * Bt[:, :, None, :]
        )
        ys.append((state * Ct[:, :, None, :]).sum(-1) + D[:, None] * x[:, t])
    return torch.stack(ys, dim=1), state


def ssd_inputs(b, L, h, p, g, n, seed, dt_scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, L, h, p, generator=gen)
    dt = F.softplus(torch.randn(b, L, h, generator=gen) - 3.0) * dt_scale  # ~0.05 typical
    A = -torch.empty(h).uniform_(1.0, 16.0, generator=gen)
    B = torch.randn(b, L, g, n, generator=gen)
    C = torch.randn(b, L, g, n, generator=gen)
    D = torch.randn(h, generator=gen)
    return [x, dt, A, B, C, D]


def grads(fn, inputs, cotangent):
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    out = out[0] if isinstance(out, tuple) else out
    (out * cotangent.to(out.dtype)).sum().backward()
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize(
    "L,chunk,g,dt_scale",
    [(1, 16, 1, 1.0), (5, 16, 1, 1.0), (16, 16, 1, 1.0), (37, 16, 1, 1.0), (100, 16, 2, 1.0),
     (64, 256, 1, 1.0), (37, 8, 1, 10.0)],
)
def test_ssd_chunked_equals_naive_recurrence(L, chunk, g, dt_scale):
    inputs = ssd_inputs(2, L, 4, 8, g, 16, seed=L + chunk, dt_scale=dt_scale)
    cot = torch.randn(2, L, 4, 8, generator=torch.Generator().manual_seed(1))
    y_ref, g_ref = grads(lambda *a: naive_ssd(*a), [t.double() for t in inputs], cot.double())
    y, g32 = grads(lambda x, dt, A, B, C, D: ssd_chunked(x, dt, A, B, C, chunk, D=D), inputs, cot)
    assert y.dtype == torch.float32
    assert rel_err(y, y_ref) <= TOL, rel_err(y, y_ref)
    for name, ga, gb in zip(["x", "dt", "A", "B", "C", "D"], g32, g_ref, strict=True):
        assert rel_err(ga, gb) <= TOL, (name, rel_err(ga, gb))


def test_ssd_initial_and_final_state():
    x, dt, A, B, C, D = ssd_inputs(2, 45, 4, 8, 1, 16, seed=3)
    h0 = torch.randn(2, 4, 8, 16)
    y_ref, s_ref = naive_ssd(*(t.double() for t in (x, dt, A, B, C, D)), h0=h0.double())
    y, s = ssd_chunked(x, dt, A, B, C, 16, D=D, initial_state=h0, return_final_state=True)
    assert rel_err(y, y_ref) <= TOL and rel_err(s, s_ref) <= TOL
    # two halves with the state carried across equal the whole
    y1, s1 = ssd_chunked(x[:, :20], dt[:, :20], A, B[:, :20], C[:, :20], 16, D=D,
                         initial_state=h0, return_final_state=True)
    y2 = ssd_chunked(x[:, 20:], dt[:, 20:], A, B[:, 20:], C[:, 20:], 16, D=D, initial_state=s1)
    assert rel_err(torch.cat([y1, y2], 1), y_ref) <= TOL


def test_segsum_matches_definition():
    a = torch.randn(3, 6, dtype=torch.float64)
    out = segsum(a)
    for i in range(6):
        for j in range(6):
            want = a[:, j + 1 : i + 1].sum(-1) if j <= i else torch.full((3,), float("-inf"))
            torch.testing.assert_close(out[:, i, j], want.to(out.dtype))


def naive_selective_scan(u, delta, A, B, C, D, z):
    """h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t u_t;  y_t = C_t . h_t + D u_t;  y * silu(z)."""
    b, L, d = u.shape
    h = torch.zeros(b, d, A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + (
            delta[:, t, :, None] * B[:, t, None, :] * u[:, t, :, None]
        )
        y = (h * C[:, t, None, :]).sum(-1) + D * u[:, t]
        ys.append(y * (z[:, t] * torch.sigmoid(z[:, t])))
    return torch.stack(ys, dim=1)


def scan_inputs(b, L, d, n, seed):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(b, L, d, generator=gen)
    delta = F.softplus(torch.randn(b, L, d, generator=gen) - 2.0)
    A = -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1) * torch.rand(d, 1, generator=gen)
    B = torch.randn(b, L, n, generator=gen)
    C = torch.randn(b, L, n, generator=gen)
    D = torch.randn(d, generator=gen)
    z = torch.randn(b, L, d, generator=gen)
    return [u, delta, A, B, C, D, z]


@pytest.mark.parametrize("scan", ["sequential", "chunked", "chunked_5"])
@pytest.mark.parametrize("L", [1, 7, 37, 64])
def test_selective_scans_equal_naive_recurrence(scan, L):
    inputs = scan_inputs(2, L, 12, 16, seed=L)
    cot = torch.randn(2, L, 12, generator=torch.Generator().manual_seed(2))
    if scan == "sequential":
        fn = selective_scan_sequential
    else:
        chunk = 5 if scan == "chunked_5" else None

        def fn(u, delta, A, B, C, D, z):
            return selective_scan_chunked(u, delta, A, B, C, D=D, z=z, chunk=chunk)

    y_ref, g_ref = grads(naive_selective_scan, [t.double() for t in inputs], cot.double())
    y, g32 = grads(lambda u, dl, A, B, C, D, z: fn(u, dl, A, B, C, D=D, z=z), inputs, cot)
    assert rel_err(y, y_ref) <= TOL, rel_err(y, y_ref)
    for name, ga, gb in zip(["u", "delta", "A", "B", "C", "D", "z"], g32, g_ref, strict=True):
        assert rel_err(ga, gb) <= TOL, (name, rel_err(ga, gb))


def test_selective_scan_final_state_carries():
    u, delta, A, B, C, D, z = scan_inputs(2, 30, 6, 4, seed=9)
    y, h = selective_scan_chunked(u, delta, A, B, C, return_final_state=True)
    y1, h1 = selective_scan_sequential(u[:, :11], delta[:, :11], A, B[:, :11], C[:, :11],
                                       return_final_state=True)
    y2, h2 = selective_scan_chunked(u[:, 11:], delta[:, 11:], A, B[:, 11:], C[:, 11:],
                                    initial_state=h1, return_final_state=True)
    assert rel_err(torch.cat([y1, y2], 1), y) <= TOL and rel_err(h2, h) <= TOL
