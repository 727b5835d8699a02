"""A GRU mixer (Dreamer-style recurrent baseline), used inside the same residual stack.

No official Drama counterpart: the GRU replaces only the mixer, so the ablation against Mamba
changes nothing else (same pre-norm RMSNorm residual blocks, dropout and final norm). On CUDA,
`nn.GRU` runs cuDNN's fused kernel; `step` uses the same module, so it gives the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class GRUMixer(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.gru = nn.GRU(d_model, d_model, num_layers=1, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 3 and x.shape[-1] == self.d_model, x.shape
        y, _ = self.gru(x)  # (b, l, d)
        return y

    def init_state(self, batch_size: int) -> dict[str, torch.Tensor]:
        return {"h": self.gru.weight_hh_l0.new_zeros(batch_size, self.d_model)}

    def step(self, x_t: torch.Tensor, state: dict[str, torch.Tensor]):
        assert x_t.ndim == 2 and x_t.shape[-1] == self.d_model, x_t.shape
        y, h = self.gru(x_t[:, None], state["h"][None].contiguous())  # (b, 1, d), (1, b, d)
        return y[:, 0], {"h": h[0]}
