"""Chunked state-space duality (SSD), the Mamba-2 paper's vectorised algorithm, in pure PyTorch.

Dao & Gu (2024), "Transformers are SSMs", Section 6 / Listing 1. Per head h the recurrence is

    s_t = exp(dt_t * A_h) * s_{t-1} + dt_t * x_t B_t^T      s: (headdim, d_state)
    y_t = s_t C_t + D_h * x_t

and the chunked algorithm splits the sequence into chunks of Q steps: (1) the quadratic
"attention-like" form inside each chunk, (2) each chunk's final state, (3) a recurrence that
passes states across chunks, (4) the contribution of the carried-in states to each chunk's
outputs. Cost O(L Q) time and memory instead of O(L^2); Python does no per-step loop.

Glossary (code -> paper):
    x   (b, l, h, p)   X, the SSM input per head (p = headdim)
    dt  (b, l, h)      Delta, the step size (already softplus'ed and positive)
    A   (h,)           A, scalar negative decay per head (A = -exp(A_log))
    B,C (b, l, g, n)   B, C (g groups shared by h/g heads each, n = d_state)
    a   (b, c, h, Q)   log decays Delta * A, chunked
    Q                  chunk length (Mamba-2 default 256; min(chunk_size, l) is used, which gives the
                       same numbers and avoids padding a short sequence up to 256)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segsum(a: torch.Tensor) -> torch.Tensor:
    """Stable segment sums: out[..., i, j] = a[..., j+1] + ... + a[..., i] for j <= i, else -inf.

    Summing the masked terms (instead of differencing a cumulative sum) keeps the small
    decays between nearby positions accurate however long the prefix is.
    """
    T = a.shape[-1]
    strict = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    lower = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(0)
    terms = a[..., :, None].expand(*a.shape, T).masked_fill(~strict, 0.0)  # (..., T, T): a_i, i > j
    sums = torch.cumsum(terms, dim=-2)  # (..., T, T)
    return sums.masked_fill(~lower, float("-inf"))


def ssd_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
):
    """Parallel SSD scan. Returns y (b, l, h, p) [and the final state (b, h, p, n)]."""
    assert x.ndim == 4, x.shape
    b, l, h, p = x.shape
    assert dt.shape == (b, l, h), (dt.shape, x.shape)
    assert B.ndim == 4 and B.shape[:2] == (b, l) and B.shape == C.shape, (B.shape, C.shape)
    g, n = B.shape[-2:]
    assert h % g == 0, (h, g)
    k = h // g  # heads per group
    assert A.shape == (h,), A.shape
    Q = min(chunk_size, l)
    pad = (-l) % Q
    if pad:  # zero dt and inputs at the end: decay 1 and no input, so nothing real changes
        x, dt, B, C = (F.pad(t, (0, 0) * (t.ndim - 2) + (0, pad)) for t in (x, dt, B, C))
    c = (l + pad) // Q

    X = (x * dt[..., None]).reshape(b, c, Q, g, k, p)  # (b, c, Q, g, k, p) discretised input
    a = (dt * A).reshape(b, c, Q, h).permute(0, 1, 3, 2)  # (b, c, h, Q) log decays
    Bc = B.reshape(b, c, Q, g, n)
    Cc = C.reshape(b, c, Q, g, n)
    a_cum = torch.cumsum(a, dim=-1)  # (b, c, h, Q)

    # 1. intra-chunk outputs (diagonal blocks): y = (C B^T o L) X, L the decay mask
    Lmat = torch.exp(segsum(a)).reshape(b, c, g, k, Q, Q)  # (b, c, g, k, Q, Q)
    CB = torch.einsum("bclgn,bcsgn->bcgls", Cc, Bc)  # (b, c, g, Q, Q)
    scores = CB[:, :, :, None] * Lmat  # (b, c, g, k, Q, Q)
    Y_diag = torch.einsum("bcgkls,bcsgkp->bclgkp", scores, X)  # (b, c, Q, g, k, p)

    # 2. intra-chunk states (right factors of the off-diagonal blocks): each chunk's final state
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, c, h, Q)
    Xd = X * decay_to_end.permute(0, 1, 3, 2).reshape(b, c, Q, g, k, 1)  # (b, c, Q, g, k, p)
    states = torch.einsum("bclgn,bclgkp->bcgkpn", Bc, Xd).reshape(b, c, h, p, n)

    # 3. inter-chunk recurrence (state passing), on the c chunk boundaries
    if initial_state is None:
        initial_state = x.new_zeros(b, h, p, n)
    assert initial_state.shape == (b, h, p, n), initial_state.shape
    states = torch.cat([initial_state[:, None], states], dim=1)  # (b, c+1, h, p, n)
    chunk_decay = F.pad(a_cum[..., -1].transpose(1, 2), (1, 0))  # (b, h, c+1)
    decay_chunk = torch.exp(segsum(chunk_decay))  # (b, h, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)  # (b, c+1, h, p, n)
    states, final_state = states[:, :-1], states[:, -1]  # (b, c, h, p, n), (b, h, p, n)

    # 4. state -> output (off-diagonal blocks): the carried-in state seen through C, decayed
    decay_from_start = torch.exp(a_cum).permute(0, 1, 3, 2).reshape(b, c, Q, g, k, 1)
    states = states.reshape(b, c, g, k, p, n)
    Y_off = torch.einsum("bclgn,bcgkpn->bclgkp", Cc, states) * decay_from_start  # (b,c,Q,g,k,p)

    y = (Y_diag + Y_off).reshape(b, c * Q, h, p)[:, :l]  # (b, l, h, p)
    if D is not None:
        y = y + x[:, :l] * D[:, None]
    return (y, final_state) if return_final_state else y
