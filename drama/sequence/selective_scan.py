"""Mamba-1's selective scan in pure PyTorch: a sequential reference and a chunked form.

Gu & Dao (2023), "Mamba", Algorithm 2. Per channel d and state index n:

    h_t[d, n] = exp(Delta_t[d] A[d, n]) h_{t-1}[d, n] + Delta_t[d] B_t[n] u_t[d]
    y_t[d]    = sum_n C_t[n] h_t[d, n] + D[d] u_t[d]          (then y * silu(z) if z is given)

Glossary: u (b, L, d) input; delta (b, L, d) step size Delta (already softplus'ed); A (d, n)
negative; B, C (b, L, n); D (d,); z (b, L, d) gate. Unlike Mamba-2, the decay depends on (d, n),
so there is no low-rank (attention-like) form; the chunked scan below only cuts the number of
sequential Python steps from L to about 2 sqrt(L), with every decay factor in (0, 1] (stable).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from drama.sequence.ssd import cumsum


def _check(u, delta, A, B, C):
    assert u.ndim == 3 and delta.shape == u.shape, (u.shape, delta.shape)
    assert A.ndim == 2 and A.shape[0] == u.shape[-1], (A.shape, u.shape)
    assert B.shape == C.shape == (*u.shape[:2], A.shape[1]), (B.shape, C.shape, A.shape)


def _finish(y, u, D, z):
    if D is not None:
        y = y + u * D
    if z is not None:
        y = y * F.silu(z)
    return y


def selective_scan_sequential(u, delta, A, B, C, D=None, z=None, initial_state=None,
                              return_final_state=False):
    """Reference: one Python step per time step. Returns y (b, L, d) [and h_L (b, d, n)]."""
    _check(u, delta, A, B, C)
    b, L, d = u.shape
    h = u.new_zeros(b, d, A.shape[1]) if initial_state is None else initial_state
    ys = []
    for t in range(L):
        decay = torch.exp(delta[:, t, :, None] * A)  # (b, d, n)
        h = decay * h + (delta[:, t] * u[:, t])[..., None] * B[:, t, None, :]  # (b, d, n)
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]))
    y = _finish(torch.stack(ys, dim=1), u, D, z)  # (b, L, d)
    return (y, h) if return_final_state else y


def selective_scan_chunked(u, delta, A, B, C, D=None, z=None, chunk: int | None = None,
                           initial_state=None, return_final_state=False):
    """Two-level scan: T steps inside all chunks at once, then c steps across chunks.

    1. local scan: every chunk of T steps from a zero state, all chunks in parallel (T steps);
    2. chunk recurrence: carried-in state H_c = G_{c-1} H_{c-1} + S_{c-1}, G the chunk's total
       decay and S its local final state (c steps);
    3. correction: h_t = h_local_t + P_t H_c, P_t the decay from the chunk start to t;
    4. output: y_t = C_t . h_t (one einsum over everything).
    """
    _check(u, delta, A, B, C)
    b, L, d = u.shape
    n = A.shape[1]
    T = max(1, math.ceil(math.sqrt(L))) if chunk is None else min(chunk, L)
    pad = (-L) % T
    c = (L + pad) // T
    log_decay = F.pad(delta, (0, 0, 0, pad))[..., None] * A  # (b, L, d, n); padding: decay 1
    drive = F.pad(delta * u, (0, 0, 0, pad))[..., None] * F.pad(B, (0, 0, 0, pad))[:, :, None, :]
    log_decay = log_decay.reshape(b, c, T, d, n)
    drive = drive.reshape(b, c, T, d, n)  # Delta_t B_t u_t, (b, c, T, d, n)
    decay = torch.exp(log_decay)  # (b, c, T, d, n)

    # 1. local scan inside every chunk, from zero
    h = torch.zeros_like(drive[:, :, 0])  # (b, c, d, n)
    local = []
    for t in range(T):
        h = decay[:, :, t] * h + drive[:, :, t]
        local.append(h)
    local = torch.stack(local, dim=2)  # (b, c, T, d, n)

    # 2. carried-in state per chunk
    P = torch.exp(cumsum(log_decay, dim=2))  # (b, c, T, d, n) decay from chunk start
    H = u.new_zeros(b, d, n) if initial_state is None else initial_state
    carried = []
    for i in range(c):
        carried.append(H)
        H = P[:, i, -1] * H + local[:, i, -1]
    carried = torch.stack(carried, dim=1)  # (b, c, d, n)

    # 3. correction and 4. output
    states = local + P * carried[:, :, None]  # (b, c, T, d, n)
    y = torch.einsum("bctdn,bctn->bctd", states, F.pad(C, (0, 0, 0, pad)).reshape(b, c, T, n))
    y = _finish(y.reshape(b, c * T, d)[:, :L], u, D, z)  # (b, L, d)
    return (y, H) if return_final_state else y
