"""The Mamba-1 mixer (one layer; residual and pre-norm live in blocks.py), two backends.

Parameter names and shapes equal mamba-ssm 2.3.2.post1's `Mamba` (in_proj, conv1d, x_proj,
dt_proj, A_log, D, out_proj), so checkpoints move between backends. Defaults: d_state 16,
expand 2, d_conv 4, dt_rank ceil(d_model / 16), S4D-real A = 1..d_state, dt in [0.001, 0.1].

Forward:  [x | z] = in_proj(u);  x = silu(causal depthwise conv(x));  [dt_low | B | C] = x_proj(x)
          Delta = softplus(dt_proj(dt_low));  y = selective_scan(x, Delta, A = -exp(A_log), B, C, D)
          out = out_proj(y * silu(z))
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from drama.sequence.kernels import load_mamba_ssm
from drama.sequence.mamba2 import init_dt_bias
from drama.sequence.selective_scan import selective_scan_chunked, selective_scan_sequential

SCANS = ("chunked", "sequential")


class Mamba1Mixer(nn.Module):
    def __init__(
        self,
        d_model: int,
        *,
        backend: str = "torch",
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        scan: str = "chunked",
        scan_chunk: int | None = None,
    ):
        super().__init__()
        if scan not in SCANS:
            raise ValueError(f"unknown scan {scan!r}; expected one of {SCANS}")
        self.backend, self.scan, self.scan_chunk = backend, scan, scan_chunk
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        std = self.dt_rank**-0.5 * dt_scale  # keeps the variance of dt at init
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        with torch.no_grad():
            self.dt_proj.bias.copy_(init_dt_bias(self.d_inner, dt_min, dt_max, dt_init_floor))
        self.dt_proj.bias._no_reinit = True  # the stack's init zeroes every other Linear bias
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # S4D real
        self.A_log = nn.Parameter(A.log())  # (d_inner, d_state)
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.A_log._no_weight_decay = self.D._no_weight_decay = True
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        assert u.ndim == 3 and u.shape[-1] == self.d_model, u.shape
        b, L, _ = u.shape
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (b, L, d_inner) each
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2))  # (b, L, d_inner)
        dt_low, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], -1)
        A = -torch.exp(self.A_log.float())  # (d_inner, d_state)
        if self.backend == "mamba_ssm":
            if not u.is_cuda:
                raise RuntimeError(
                    "Mamba1Mixer was built with backend='mamba_ssm', which runs on CUDA tensors "
                    f"only; got a tensor on {u.device}. Build it with backend='torch'."
                )
            y = load_mamba_ssm().selective_scan(
                x.transpose(1, 2).contiguous(),  # (b, d, L)
                (dt_low @ self.dt_proj.weight.t()).transpose(1, 2).contiguous(),  # (b, d, L)
                A,
                B.transpose(1, 2).contiguous(),  # (b, n, L)
                C.transpose(1, 2).contiguous(),
                self.D.float(),
                z=z.transpose(1, 2).contiguous(),
                delta_bias=self.dt_proj.bias.float(),
                delta_softplus=True,
            ).transpose(1, 2)  # (b, L, d)
            return self.out_proj(y)
        delta = F.softplus(self.dt_proj(dt_low))  # (b, L, d_inner)
        if self.scan == "sequential":
            y = selective_scan_sequential(x, delta, A, B, C, D=self.D, z=z)
        else:
            y = selective_scan_chunked(x, delta, A, B, C, D=self.D, z=z, chunk=self.scan_chunk)
        return self.out_proj(y)

    def init_state(self, batch_size: int) -> dict[str, torch.Tensor]:
        w = self.in_proj.weight
        return {
            "conv": w.new_zeros(batch_size, self.d_inner, self.d_conv - 1),
            "ssm": w.new_zeros(batch_size, self.d_inner, self.d_state),
        }

    def step(self, u_t: torch.Tensor, state: dict[str, torch.Tensor]):
        assert u_t.ndim == 2 and u_t.shape[-1] == self.d_model, u_t.shape
        x, z = self.in_proj(u_t).chunk(2, dim=-1)  # (b, d_inner)
        window = torch.cat([state["conv"], x[..., None]], dim=-1)  # (b, d_inner, d_conv)
        x = F.silu((window * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)
        dt_low, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], -1)
        delta = F.softplus(self.dt_proj(dt_low))  # (b, d_inner)
        decay = torch.exp(delta[..., None] * -torch.exp(self.A_log.float()))  # (b, d_inner, n)
        h = decay * state["ssm"] + (delta * x)[..., None] * B[:, None, :]  # (b, d_inner, n)
        y = torch.einsum("bdn,bn->bd", h, C) + self.D * x
        y = y * F.silu(z)
        return self.out_proj(y), {"conv": window[..., 1:], "ssm": h}
