"""The residual stack around a mixer: Drama's (mamba-ssm MixerModel's) block structure.

ICLR-release structure (fused add+norm with dropout, `residual_in_fp32`), written plainly:

    r = dropout(x)                                  # dropout on the stack's input too
    for each layer:  r = r + dropout(mixer(RMSNorm(r)))
    out = RMSNorm_f(r)

with the residual stream kept in fp32 (the official residual_in_fp32=True; under bf16 autocast
the output is fp32 too), i.e. pre-norm residual blocks, no MLP inside a block (d_intermediate 0),
residual dropout 0.1, a final RMSNorm; RMSNorm eps 1e-5 (mamba-ssm's `norm_epsilon`).
Module names as mamba-ssm's (`layers.{i}.norm`, `layers.{i}.mixer`, `norm_f`). Initialisation as
mamba-ssm's `_init_weights`: Linear biases zeroed (except dt_proj's), every `out_proj.weight` drawn
as nn.Linear's default and scaled by 1/sqrt(n_layers).

State for `step`: a flat dict of fixed-shape tensors, keys `"{layer}.{name}"`, batch on dim 0,
all zeros at start (so resetting a finished sequence's row means zeroing that row in every tensor).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn


def _norm(norm: nn.RMSNorm, r: torch.Tensor) -> torch.Tensor:
    """The official Block: norm(residual.to(norm.weight.dtype)); the residual itself stays fp32."""
    return norm(r.to(norm.weight.dtype))


class Block(nn.Module):
    def __init__(self, d_model: int, mixer: nn.Module, eps: float):
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=eps)
        self.mixer = mixer


class ResidualStack(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_layers: int,
        make_mixer: Callable[[], nn.Module],
        *,
        backend: str,
        dropout: float = 0.1,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.d_model, self.n_layers, self.backend = d_model, n_layers, backend
        self.layers = nn.ModuleList(Block(d_model, make_mixer(), norm_eps) for _ in range(n_layers))
        self.norm_f = nn.RMSNorm(d_model, eps=norm_eps)
        self.dropout = nn.Dropout(dropout)
        self._init_weights()
        self._state_keys = tuple(self.init_state(1))

    @torch.no_grad()
    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                if not getattr(module.bias, "_no_reinit", False):
                    module.bias.zero_()
            out_proj = getattr(module, "out_proj", None)
            if isinstance(out_proj, nn.Linear):
                nn.init.kaiming_uniform_(out_proj.weight, a=math.sqrt(5))
                out_proj.weight /= math.sqrt(self.n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 3 and x.shape[-1] == self.d_model, x.shape
        r = self.dropout(x).float()  # (b, L, d) residual stream, fp32 (residual_in_fp32)
        for layer in self.layers:
            r = r + self.dropout(layer.mixer(_norm(layer.norm, r)))
        return _norm(self.norm_f, r)

    def init_state(self, batch_size: int) -> dict[str, torch.Tensor]:
        state = {}
        for i, layer in enumerate(self.layers):
            for name, tensor in layer.mixer.init_state(batch_size).items():
                state[f"{i}.{name}"] = tensor
        return state

    def step(self, x_t: torch.Tensor, state: dict[str, torch.Tensor]):
        assert x_t.ndim == 2 and x_t.shape[-1] == self.d_model, x_t.shape
        new_state = {}
        if set(state) != set(self._state_keys):
            raise ValueError(f"state keys {sorted(state)} differ from init_state's "
                             f"{sorted(self._state_keys)}")
        r = self.dropout(x_t).float()  # (b, d)
        for i, layer in enumerate(self.layers):
            prefix = f"{i}."
            mine = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            y, mine = layer.mixer.step(_norm(layer.norm, r), mine)
            r = r + self.dropout(y)
            new_state.update({prefix + k: v for k, v in mine.items()})
        return _norm(self.norm_f, r), new_state
