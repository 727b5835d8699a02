"""The Mamba-2 mixer (one layer, no residual or pre-norm: see blocks.py), two backends.

Parameter names and shapes equal mamba-ssm 2.3.2.post1's `Mamba2` (in_proj.weight,
conv1d.weight, conv1d.bias, dt_bias, A_log, D, norm.weight, out_proj.weight), so a state dict moves
between the `torch` and `mamba_ssm` backends and to or from mamba-ssm itself. The defaults are
Drama's (official code, ssm_cfg d_state=16, everything else mamba-ssm's Mamba2 defaults).

Forward:  [z | xBC | dt] = in_proj(u);  xBC = silu(causal depthwise conv(xBC));  [x | B | C] = xBC
          y = SSD(x, softplus(dt + dt_bias), A = -exp(A_log), B, C) + D x
          out = out_proj(RMSNorm(y * silu(z)))     (gated RMSNorm, norm_before_gate=False)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from drama.sequence.kernels import load_mamba_ssm
from drama.sequence.ssd import ssd_chunked


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def init_dt_bias(n: int, dt_min: float, dt_max: float, dt_init_floor: float) -> torch.Tensor:
    """dt log-uniform in [dt_min, dt_max], floored, stored through the inverse softplus."""
    log_dt = torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    return inverse_softplus(torch.exp(log_dt).clamp(min=dt_init_floor))


def gated_rmsnorm(y, z, weight, eps: float, group_size: int):
    """RMSNorm(y * silu(z)) * weight, normalised over groups of `group_size` channels."""
    y = y * F.silu(z)
    shape = y.shape
    yg = y.reshape(*shape[:-1], shape[-1] // group_size, group_size)  # (..., groups, group_size)
    yg = yg * torch.rsqrt(yg.square().mean(-1, keepdim=True) + eps)
    return yg.reshape(shape) * weight


def causal_conv1d_input(xBC: torch.Tensor) -> torch.Tensor:
    """(b, L, C) -> (b, C, L) in a memory layout that causal-conv1d's `causal_conv1d_fn` takes.

    causal-conv1d (1.6.x, csrc/causal_conv1d.cpp) accepts a channel-first tensor (stride(2) ==
    1) or a channel-last one (stride(1) == 1) whose C, stride(0) and stride(2) are multiples of
    8. Our xBC is a column slice of in_proj's output, so its row stride is in_proj's width
    2*d_inner + 2*ngroups*d_state + nheads (4d + 32 + d/32 at Drama's defaults): a multiple of 8
    for d_model 512 but not for 64 or 32. As mamba-ssm's own `ensure_stride`: copy to a
    contiguous (b, L, C) tensor when the strides do not fit; channel-first when C does not.
    """
    if xBC.shape[-1] % 8:
        return xBC.transpose(1, 2).contiguous()  # channel-first, any C
    if xBC.stride(2) != 1 or xBC.stride(1) % 8 or xBC.stride(0) % 8:
        xBC = xBC.contiguous()
    return xBC.transpose(1, 2)  # channel-last view, strides multiples of 8


class GatedRMSNorm(nn.Module):
    """Holds `weight` under the name mamba-ssm uses (`norm.weight`); eps 1e-5 as in Mamba2."""

    def __init__(self, d: int, eps: float = 1e-5, group_size: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps
        self.group_size = d if group_size is None else group_size

    def forward(self, y, z):
        return gated_rmsnorm(y, z, self.weight, self.eps, self.group_size)


class Mamba2Mixer(nn.Module):
    def __init__(
        self,
        d_model: int,
        *,
        backend: str = "torch",
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        chunk_size: int = 256,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ):
        super().__init__()
        d_inner = expand * d_model
        if d_inner % headdim:
            raise ValueError(f"expand*d_model={d_inner} must be a multiple of headdim={headdim}")
        nheads = d_inner // headdim
        if nheads % ngroups:
            raise ValueError(f"nheads={nheads} must be a multiple of ngroups={ngroups}")
        if not 0 < A_init_range[0] <= A_init_range[1]:
            raise ValueError(f"A_init_range must satisfy 0 < low <= high, got {A_init_range}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.backend = backend
        self.d_model, self.d_inner, self.d_state, self.d_conv = d_model, d_inner, d_state, d_conv
        self.headdim, self.nheads, self.ngroups = headdim, nheads, ngroups
        self.chunk_size = chunk_size
        self.conv_dim = d_inner + 2 * ngroups * d_state
        # order [z, x, B, C, dt] as in mamba-ssm
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * ngroups * d_state + nheads, bias=False)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, padding=d_conv - 1
        )
        self.dt_bias = nn.Parameter(init_dt_bias(nheads, dt_min, dt_max, dt_init_floor))
        self.A_log = nn.Parameter(torch.empty(nheads).uniform_(*A_init_range).log())
        self.D = nn.Parameter(torch.ones(nheads))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True  # as mamba-ssm marks them
        self.norm = GatedRMSNorm(d_inner, eps=1e-5, group_size=d_inner // ngroups)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    # ---- parallel (training) ------------------------------------------------------------
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        assert u.ndim == 3 and u.shape[-1] == self.d_model, u.shape
        b, L, _ = u.shape
        zxbcdt = self.in_proj(u)  # (b, L, 2*d_inner + 2*g*n + h)
        z, xBC, dt = torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)
        A = -torch.exp(self.A_log.float())  # (h,)
        if self.backend == "mamba_ssm":
            return self._forward_mamba_ssm(z, xBC, dt, A)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :L].transpose(1, 2))  # (b, L, conv_dim)
        x, B, C = torch.split(
            xBC, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1
        )
        y = ssd_chunked(
            x.reshape(b, L, self.nheads, self.headdim),
            F.softplus(dt + self.dt_bias),
            A,
            B.reshape(b, L, self.ngroups, self.d_state),
            C.reshape(b, L, self.ngroups, self.d_state),
            self.chunk_size,
            D=self.D,
        )  # (b, L, h, p)
        y = self.norm(y.reshape(b, L, self.d_inner), z)
        return self.out_proj(y)

    def _forward_mamba_ssm(self, z, xBC, dt, A):
        """mamba-ssm's Triton SSD + Triton gated RMSNorm (the non-fused path of its Mamba2)."""
        if not z.is_cuda:
            raise RuntimeError(
                "Mamba2Mixer was built with backend='mamba_ssm', which runs on CUDA tensors only; "
                f"got a tensor on {z.device}. Build it with backend='torch' for this device."
            )
        k = load_mamba_ssm()
        b, L, _ = z.shape
        weight = self.conv1d.weight.squeeze(1)  # (conv_dim, d_conv)
        if k.causal_conv1d is not None and 2 <= self.d_conv <= 4:  # its supported widths
            xBC = k.causal_conv1d(causal_conv1d_input(xBC), weight, self.conv1d.bias,
                                  activation="silu")
            xBC = xBC.transpose(1, 2)
        else:
            xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :L].transpose(1, 2))
        x, B, C = torch.split(
            xBC, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1
        )
        y = k.chunk_scan_combined(
            x.reshape(b, L, self.nheads, self.headdim),
            dt,
            A,
            B.reshape(b, L, self.ngroups, self.d_state),
            C.reshape(b, L, self.ngroups, self.d_state),
            chunk_size=self.chunk_size,
            D=self.D,
            z=None,
            dt_bias=self.dt_bias,
            dt_softplus=True,
        )  # (b, L, h, p)
        y = k.rmsnorm_gated(
            y.reshape(b, L, self.d_inner), self.norm.weight, None, z=z, eps=self.norm.eps,
            group_size=self.norm.group_size, norm_before_gate=False,
        )
        return self.out_proj(y)

    # ---- recurrent (acting / imagination) ----------------------------------------------------
    def init_state(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Zeros: the last d_conv-1 conv inputs and the SSM state (h, p, n) per sequence."""
        w = self.in_proj.weight
        return {
            "conv": w.new_zeros(batch_size, self.conv_dim, self.d_conv - 1),
            "ssm": w.new_zeros(batch_size, self.nheads, self.headdim, self.d_state),
        }

    def step(self, u_t: torch.Tensor, state: dict[str, torch.Tensor]):
        """One time step for every backend (plain tensor ops; capturable in a CUDA graph)."""
        assert u_t.ndim == 2 and u_t.shape[-1] == self.d_model, u_t.shape
        bsz = u_t.shape[0]
        zxbcdt = self.in_proj(u_t)  # (b, ...)
        z, xBC, dt = torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)
        window = torch.cat([state["conv"], xBC[..., None]], dim=-1)  # (b, conv_dim, d_conv)
        xBC = F.silu((window * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)
        x, B, C = torch.split(
            xBC, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1
        )
        k = self.nheads // self.ngroups
        x = x.reshape(bsz, self.nheads, self.headdim)  # (b, h, p)
        B = B.reshape(bsz, self.ngroups, 1, self.d_state).expand(-1, -1, k, -1)
        C = C.reshape(bsz, self.ngroups, 1, self.d_state).expand(-1, -1, k, -1)
        B, C = B.reshape(bsz, self.nheads, self.d_state), C.reshape(bsz, self.nheads, self.d_state)
        dt = F.softplus(dt + self.dt_bias)  # (b, h)
        decay = torch.exp(dt * -torch.exp(self.A_log.float()))  # (b, h)
        ssm = state["ssm"] * decay[..., None, None] + (dt[..., None] * x)[..., None] * B[:, :, None]
        y = torch.einsum("bhpn,bhn->bhp", ssm, C) + self.D[:, None] * x  # (b, h, p)
        y = self.norm(y.reshape(bsz, self.d_inner), z)
        return self.out_proj(y), {"conv": window[..., 1:], "ssm": ssm}
