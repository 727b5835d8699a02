"""Chunked state-space duality (SSD), the Mamba-2 paper's vectorised algorithm, in pure PyTorch.

Dao & Gu (2024), "Transformers are SSMs", Section 6 / Listing 1. Per head h the recurrence is

    s_t = exp(dt_t * A_h) * s_{t-1} + dt_t * x_t B_t^T      s: (headdim, d_state)
    y_t = s_t C_t + D_h * x_t

and the chunked algorithm splits the sequence into chunks of Q steps: (1) the quadratic
"attention-like" form inside each chunk, (2) each chunk's final state, (3) a recurrence that
passes states across chunks, (4) the contribution of the carried-in states to each chunk's
outputs. Cost O(L Q) time and memory instead of O(L^2); Python does no per-step loop.

Glossary (code -> paper):
    x   (b, L, h, p)   X, the SSM input per head (p = headdim)
    dt  (b, L, h)      Delta, the step size (already softplus'ed and positive)
    A   (h,)           A, scalar negative decay per head (A = -exp(A_log))
    B,C (b, L, g, n)   B, C (g groups shared by h/g heads each, n = d_state)
    a   (b, h, c, Q)   log decays Delta * A, chunked (head-major layout inside)
    Q                  chunk length (Mamba-2 default 256; min(chunk_size, L) is used: the same
                       numbers, without padding a short sequence up to 256)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scan_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Inclusive prefix sum along ``dim`` by log2(n) rounds of shifted additions (Hillis-Steele).

    Built from element-wise adds only (forward and backward), so it is deterministic on CUDA,
    where float ``torch.cumsum`` has no deterministic kernel. The order of the additions
    differs from a sequential sum: results agree with torch.cumsum to float rounding.
    """
    dim = dim % x.ndim
    n, shift = x.shape[dim], 1
    while shift < n:
        head = torch.zeros_like(x.narrow(dim, 0, shift))
        x = x + torch.cat([head, x.narrow(dim, 0, n - shift)], dim=dim)
        shift *= 2
    return x


def cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """torch.cumsum, except under torch.use_deterministic_algorithms(True) on CUDA (where a
    float cumsum raises for want of a deterministic kernel): then :func:`scan_cumsum`.
    CPU runs, and CUDA runs without the deterministic mode, are unchanged."""
    if x.is_cuda and x.is_floating_point() and torch.are_deterministic_algorithms_enabled():
        return scan_cumsum(x, dim)
    return torch.cumsum(x, dim=dim)


def segsum(a: torch.Tensor) -> torch.Tensor:
    """Stable segment sums: out[..., i, j] = a[..., j+1] + ... + a[..., i] for j <= i, else -inf.

    Summing the masked terms (instead of differencing a cumulative sum) keeps the small
    decays between nearby positions accurate however long the prefix is.
    """
    T = a.shape[-1]
    strict = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    lower = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(0)
    terms = a[..., :, None].expand(*a.shape, T).masked_fill(~strict, 0.0)  # (..., T, T): a_i, i > j
    sums = cumsum(terms, dim=-2)  # (..., T, T)
    return sums.masked_fill(~lower, float("-inf"))


def _finish(y, xh, D, L):
    """Add the skip term D x and return to (b, L, h, p); y, xh (b, h, L(+pad), p)."""
    if D is not None:
        y = y + xh[:, :, :L] * D[:, None, None]
    return y.transpose(1, 2)


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
    """Parallel SSD scan. Returns y (b, L, h, p) [and the final state (b, h, p, n)]."""
    assert x.ndim == 4, x.shape
    b, L, h, p = x.shape
    assert dt.shape == (b, L, h), (dt.shape, x.shape)
    assert B.ndim == 4 and B.shape[:2] == (b, L) and B.shape == C.shape, (B.shape, C.shape)
    g, n = B.shape[-2:]
    assert h % g == 0, (h, g)
    k = h // g  # heads per group
    assert A.shape == (h,), A.shape
    Q = min(chunk_size, L)
    pad = (-L) % Q
    if pad:  # zero dt and inputs at the end: decay 1 and no input, so nothing real changes
        x, dt, B, C = (F.pad(t, (0, 0) * (t.ndim - 2) + (0, pad)) for t in (x, dt, B, C))
    c = (L + pad) // Q
    # head-major layout, so that every contraction below is a plain batched matmul
    xh = x.permute(0, 2, 1, 3)  # (b, h, L, p)
    dth = dt.transpose(1, 2)  # (b, h, L)
    X = (xh * dth[..., None]).reshape(b, g, k, c, Q, p)  # discretised input
    a = (dth * A[:, None]).reshape(b, h, c, Q)  # log decays Delta * A
    Bc = B.permute(0, 2, 1, 3).reshape(b, g, 1, c, Q, n)
    Cc = C.permute(0, 2, 1, 3).reshape(b, g, 1, c, Q, n)
    a_cum = cumsum(a, dim=-1)  # (b, h, c, Q)

    # 1. intra-chunk outputs (diagonal blocks): Y = (C B^T o L) X, L the causal decay mask
    # L[i, j] = exp(a_{j+1} + ... + a_i), by the stable segment sum of the paper's listing. (The
    # shortcut exp(a_cum_i - a_cum_j), which mamba-ssm's Triton kernel uses, was measured 10x less
    # accurate on dA under strong decay: rel. error ~1e-5 against ~1e-6 here.)
    diff = segsum(a)  # (b, h, c, Q, Q), -inf above the diagonal
    Lmat = torch.exp(diff).reshape(b, g, k, c, Q, Q)  # (b, g, k, c, Q, Q)
    CB = Cc @ Bc.transpose(-1, -2)  # (b, g, 1, c, Q, Q)
    Y_diag = (CB * Lmat) @ X  # (b, g, k, c, Q, p)
    if c == 1 and initial_state is None and not return_final_state:
        # one chunk starting from zero (every L <= chunk_size, e.g. Drama's training batches):
        # steps 2-4 add exactly zero, so skip them
        y = Y_diag.reshape(b, h, Q, p)[:, :, :L]
        return _finish(y, xh, D, L)

    # 2. intra-chunk states (right factors of the off-diagonal blocks): each chunk's final state
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum).reshape(b, g, k, c, Q, 1)
    states = (X * decay_to_end).transpose(-1, -2) @ Bc  # (b, g, k, c, p, n)

    # 3. inter-chunk recurrence (state passing) over the c chunk boundaries, stable segsum
    if initial_state is None:
        initial_state = x.new_zeros(b, h, p, n)
    assert initial_state.shape == (b, h, p, n), initial_state.shape
    states = torch.cat([initial_state[:, :, None], states.reshape(b, h, c, p, n)], dim=2)
    decay_chunk = torch.exp(segsum(F.pad(a_cum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    states = (decay_chunk @ states.reshape(b, h, c + 1, p * n)).reshape(b, h, c + 1, p, n)
    states, final_state = states[:, :, :-1], states[:, :, -1]  # (b, h, c, p, n), (b, h, p, n)

    # 4. state -> output (off-diagonal blocks): the carried-in state seen through C, decayed
    decay_from_start = torch.exp(a_cum).reshape(b, g, k, c, Q, 1)
    states = states.reshape(b, g, k, c, p, n)
    Y_off = (Cc @ states.transpose(-1, -2)) * decay_from_start  # (b, g, k, c, Q, p)

    y = _finish((Y_diag + Y_off).reshape(b, h, c * Q, p)[:, :, :L], xh, D, L)  # (b, L, h, p)
    return (y, final_state) if return_final_state else y
