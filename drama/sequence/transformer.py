"""A causal Transformer sequence model with a fixed-size KV cache (STORM / the official Drama
code's `StochasticTransformerKVCache`, without its input stem, which the world model owns).

Structure as the official code: learned positional embedding added to the input, LayerNorm
(eps 1e-6), then n post-norm blocks, each
    x = LayerNorm(x + dropout(W_o MHA(x)))          8 heads, no projection biases
    x = LayerNorm(x + dropout(W_2 relu(W_1 x)))     feed-forward width d_ff (1024 for d 512)
with attention-probability dropout 0.1 as well. Attention runs through
`F.scaled_dot_product_attention` (flash / memory-efficient kernels on CUDA).

Recurrent use: `init_state(batch_size, cache_len=None)` gives zeroed K/V caches of a fixed length
(default `max_len`) and a per-sequence position counter; `step` writes the new key/value at that
position (masked `where`, no data-dependent shapes, so a CUDA graph can capture it) and attends
over positions <= its own. Stepping a sequence past `cache_len` or `max_len` is an error.
Deviation from the official code: the cache holds projected K/V per layer instead of each layer's
input (same numbers, fewer FLOPs per step); the mask uses -inf instead of -1e9.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class TransformerBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.n_heads, self.head_dim, self.p = n_heads, d_model // n_heads, dropout
        self.w_qs = nn.Linear(d_model, d_model, bias=False)
        self.w_ks = nn.Linear(d_model, d_model, bias=False)
        self.w_vs = nn.Linear(d_model, d_model, bias=False)
        self.fc = nn.Linear(d_model, d_model, bias=False)
        self.attn_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.ffn_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.dropout = nn.Dropout(dropout)

    def heads(self, t: torch.Tensor) -> torch.Tensor:  # (b, L, d) -> (b, H, L, dh)
        return t.reshape(*t.shape[:2], self.n_heads, self.head_dim).transpose(1, 2)

    def finish(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """attn (b, L, d) merged heads -> the rest of the block."""
        x = self.attn_norm(x + self.dropout(self.fc(attn)))
        return self.ffn_norm(x + self.dropout(self.w_2(F.relu(self.w_1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, L, d = x.shape
        q, k, v = self.heads(self.w_qs(x)), self.heads(self.w_ks(x)), self.heads(self.w_vs(x))
        p = self.p if self.training else 0.0
        attn = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (b,H,L,dh)
        return self.finish(x, attn.transpose(1, 2).reshape(b, L, d))


class TransformerSequenceModel(nn.Module):
    def __init__(self, d_model: int, n_layers: int, *, n_heads: int = 8, d_ff: int = 1024,
                 dropout: float = 0.1, max_len: int = 128):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}")
        if max_len < 1:
            raise ValueError(f"max_len must be positive, got {max_len}")
        self.backend = "torch"
        self.d_model, self.n_layers, self.n_heads = d_model, n_layers, n_heads
        self.max_len = max_len
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.layers = nn.ModuleList(
            TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 3 and x.shape[-1] == self.d_model, x.shape
        if x.shape[1] > self.max_len:
            raise ValueError(
                f"sequence length {x.shape[1]} exceeds the Transformer's max_len={self.max_len} "
                "(learned positional embedding); build it with a larger max_len"
            )
        x = self.layer_norm(x + self.pos_emb.weight[: x.shape[1]])  # (b, L, d)
        for layer in self.layers:
            x = layer(x)
        return x

    def init_state(self, batch_size: int, cache_len: int | None = None) -> dict[str, torch.Tensor]:
        """Zeroed K/V caches (b, n_layers, H, cache_len, dh) and positions (b,) int64."""
        cache_len = self.max_len if cache_len is None else cache_len
        if not 1 <= cache_len <= self.max_len:
            raise ValueError(f"cache_len must be in [1, max_len={self.max_len}], got {cache_len}")
        w = self.pos_emb.weight
        shape = (batch_size, self.n_layers, self.n_heads, cache_len, self.d_model // self.n_heads)
        return {
            "k": w.new_zeros(shape),
            "v": w.new_zeros(shape),
            "pos": torch.zeros(batch_size, dtype=torch.long, device=w.device),
        }

    def step(self, x_t: torch.Tensor, state: dict[str, torch.Tensor]):
        assert x_t.ndim == 2 and x_t.shape[-1] == self.d_model, x_t.shape
        if set(state) != {"k", "v", "pos"}:
            raise ValueError(f"Transformer state needs keys k, v, pos; got {sorted(state)}")
        pos = state["pos"]  # (b,)
        cache_len = state["k"].shape[3]
        # no host sync: checked on the device (raises at once on CPU, asynchronously on CUDA)
        torch._assert_async((pos < cache_len).all(), "Transformer step past the KV cache length")
        slots = torch.arange(cache_len, device=x_t.device)
        write = (slots == pos[:, None])[:, None, :, None]  # (b, 1, S, 1)
        visible = (slots <= pos[:, None])[:, None, None, :]  # (b, 1, 1, S)
        x = self.layer_norm(x_t + self.pos_emb(pos))[:, None]  # (b, 1, d)
        ks, vs = [], []
        for i, layer in enumerate(self.layers):
            q, k, v = (layer.heads(w(x)) for w in (layer.w_qs, layer.w_ks, layer.w_vs))
            k_cache = torch.where(write, k, state["k"][:, i])  # (b, H, S, dh)
            v_cache = torch.where(write, v, state["v"][:, i])
            p = layer.p if self.training else 0.0
            attn = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=visible,
                                                  dropout_p=p)  # (b, H, 1, dh)
            x = layer.finish(x, attn.transpose(1, 2).reshape(x.shape))
            ks.append(k_cache)
            vs.append(v_cache)
        return x[:, 0], {"k": torch.stack(ks, 1), "v": torch.stack(vs, 1), "pos": pos + 1}
