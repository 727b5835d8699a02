"""Replay buffer with Dynamic Frequency-based Sampling (DFS, Drama Sec. 3.3).

Glossary (paper / official ``replay_buffer.py`` -> code):
    N                 ``len(buffer)``, transitions held (capacity 100,000)
    c_i               ``wm_count[i]``: times i was the start of a world-model sequence
    I_i               ``img_count[i]``: times i was the start of an imagination context
    I~_i              I_i / ``img_count_scale`` (= imagination batch / world-model batch
                      = 1024 / 16 = 64), so one imagination draw weighs 1/64 of a model draw
    tau, tau_img      ``wm_tau``, ``img_tau`` (both 10)
    alpha, beta       ``alpha``, ``beta`` (both 1)

World-model starts: p_i ∝ exp(-c_i / tau) over the valid starts i (i <= N - L, L = 128).
Imagination starts: s_i = c_i - alpha I~_i - beta max(0, c_i - I~_i), p_i = softmax(s_i / tau_img)
over i <= N - L_ctx (L_ctx = 8). Both draw their batch *without replacement* and then add one
to the counter of every drawn start (only the start index, as in the official code).

Sampling without replacement from softmax(logits) is done with the Gumbel-top-k trick
(keys = logits + Gumbel noise, take the k largest; Vieira 2014, Kool et al. 2019), which is
distributed exactly like sequential draws without replacement, i.e. like the official
``torch.multinomial(p, k, replacement=False)``; it is one vectorised pass over the buffer with
the counters kept as tensors on the buffer's device. ``sampling="uniform"`` (the paper's
ablation) uses logits 0 for every valid start.

Episode boundaries. Every stored step carries ``is_first`` (first step after an environment
reset; *not* set after a life loss, which is only a termination flag). With
``cross_episodes=True`` (default, the official behaviour) every i <= N - L is a valid start:
a window may span a reset, marked only by the termination flag at the end of the old episode
and ``is_first`` at the new one, and the sequence model is not reset inside it. With
``cross_episodes=False`` (our correction, variant ``corrected``) a start i is valid only if
the window i .. i+L-1 contains no ``is_first`` after its first position, so a sampled sequence
never spans a reset and the sequence model never carries state from one episode into the
next; the last step of an episode (termination 1.0 on game over, or a time-limit truncation
with termination 0.0) can still end a window. Invalid starts get probability 0 and their
counters stay 0; the DFS formulas above are then normalised over the valid starts only. A
consequence to know: near an episode's end fewer windows are valid (a game-over step is
covered by one world-model window, an interior step by 128). Life losses never break a window.
Excluding windows can leave fewer valid starts than a batch right after the warm-up (1,032
steps hold 1,025 imagination windows of 8, minus up to 7 per reset); such a batch is filled
by repeated without-replacement passes instead of failing (see ``draw_starts``).

Ring buffer: once full, the oldest slot is overwritten and its counters reset to 0. Windows are
taken in logical (time) order, oldest first, so none crosses the write position. (The official
buffer indexes physical slots and would splice old and new data after wrapping.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drama.model_config import ReplayConfig


def valid_starts(is_first: Tensor, length: int, cross_episodes: bool) -> Tensor:
    """Bool (n - length + 1,): window [j, j+length) in logical order is allowed.

    ``is_first`` (n,) bool in logical order. Without ``cross_episodes``, a window may hold an
    ``is_first`` only at its first position.
    """
    n = is_first.shape[0]
    assert 1 <= length <= n, (length, n)
    if cross_episodes or length == 1:
        return torch.ones(n - length + 1, dtype=torch.bool, device=is_first.device)
    cs = torch.cumsum(is_first, 0, dtype=torch.int32)  # cs[k] = #is_first in [0, k]
    m = n - length + 1
    return (cs[length - 1 :] - cs[:m]) == 0  # #is_first in (j, j+length) = cs[j+L-1] - cs[j]


class ReplayBuffer:
    """Uint8 frame store with DFS counters; everything lives on ``device``.

    ``add`` one transition at a time; ``sample_world_model`` / ``sample_imagination`` return
    dicts of tensors on ``device``: obs (B,L,64,64,3) uint8, action (B,L) long, reward (B,L)
    float32, termination (B,L) float32, is_first (B,L) bool.
    """

    def __init__(
        self,
        cfg: ReplayConfig,
        obs_shape: tuple[int, ...] = (64, 64, 3),
        device: str | torch.device = "cpu",
        seed: int = 0,
    ):
        self.cfg = cfg
        self.obs_shape = tuple(obs_shape)
        self.device = torch.device(device)
        cap = int(cfg.capacity)
        self.capacity = cap
        dev = self.device
        self.obs = torch.empty((cap, *self.obs_shape), dtype=torch.uint8, device=dev)
        self.action = torch.zeros(cap, dtype=torch.long, device=dev)
        self.reward = torch.zeros(cap, dtype=torch.float32, device=dev)
        self.termination = torch.zeros(cap, dtype=torch.float32, device=dev)
        self.is_first = torch.zeros(cap, dtype=torch.bool, device=dev)
        self.wm_count = torch.zeros(cap, dtype=torch.int32, device=dev)  # c_i (physical slot)
        self.img_count = torch.zeros(cap, dtype=torch.int32, device=dev)  # I_i (physical slot)
        self._is_first_host = np.zeros(cap, dtype=bool)  # host mirror: size checks, no sync
        self._ptr = 0  # next physical slot to write
        self._size = 0
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(int(seed))

    # ------------------------------------------------------------------ storage
    def __len__(self) -> int:
        return self._size

    @property
    def ready(self) -> bool:
        """True once more than ``cfg.warmup`` transitions are stored (official criterion)."""
        return self._size > self.cfg.warmup

    def add(self, obs, action: int, reward: float, termination: bool, is_first: bool) -> None:
        obs_t = torch.as_tensor(obs)
        if obs_t.dtype != torch.uint8 or tuple(obs_t.shape) != self.obs_shape:
            raise ValueError(
                f"replay.add: obs must be uint8 of shape {self.obs_shape}, "
                f"got {obs_t.dtype} {tuple(obs_t.shape)}"
            )
        i = self._ptr
        self.obs[i].copy_(obs_t)
        self.action[i] = int(action)
        self.reward[i] = float(reward)
        self.termination[i] = float(bool(termination))
        self.is_first[i] = bool(is_first)
        self._is_first_host[i] = bool(is_first)
        self.wm_count[i] = 0  # a new transition in this slot: fresh counters
        self.img_count[i] = 0
        self._ptr = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def _oldest(self) -> int:
        return self._ptr if self._size == self.capacity else 0

    def _physical(self, logical: Tensor) -> Tensor:
        return (logical + self._oldest()) % self.capacity

    def _logical_slice(self, t: Tensor, n: int) -> Tensor:
        """Entries of physical tensor ``t`` for logical positions [0, n)."""
        start = self._oldest()
        if start == 0:
            return t[:n]
        return t[self._physical(torch.arange(n, device=t.device))]

    def window_starts(self, length: int) -> Tensor:
        """(N,) bool over logical positions: a window of ``length`` steps from there stays in
        one episode (no episode start after its first step)."""
        return valid_starts(self._logical_slice(self.is_first, len(self)), length, False)

    # ------------------------------------------------------------------ DFS
    def _check_request(self, batch_size: int, length: int) -> int:
        if length < 1 or batch_size < 1:
            raise ValueError(
                f"replay: batch_size and length must be >= 1, got {batch_size}, {length}"
            )
        if length > self._size:
            raise ValueError(
                f"replay: cannot sample sequences of length {length} from {self._size} transitions"
            )
        n_valid = self.num_valid_starts(length)
        if n_valid == 0:
            raise ValueError(
                f"replay: no valid start index for length {length} among {self._size} "
                f"transitions (every window would span an episode reset; "
                f"cross_episodes={self.cfg.cross_episodes})"
            )
        return n_valid

    def num_valid_starts(self, length: int) -> int:
        """Number of allowed windows of ``length`` (host-side, from the is_first mirror).

        Same rule as :func:`valid_starts`, computed from the episode segments so that checking a
        request never reads device memory: a segment of n steps holds max(0, n - length + 1).
        """
        n = self._size
        if length > n:
            return 0
        if self.cfg.cross_episodes or length == 1:
            return n - length + 1
        first = np.roll(self._is_first_host, -self._oldest())[:n]  # logical order
        cuts = np.flatnonzero(first[1:]) + 1  # segment starts after position 0
        seg = np.diff(np.concatenate(([0], cuts, [n])))  # segment lengths
        return int(np.maximum(seg - length + 1, 0).sum())

    def start_logits(self, kind: str, length: int) -> Tensor:
        """Unnormalised log-probabilities (N - length + 1,) of the logical start indices.

        ``kind`` is 'world_model' or 'imagination'; invalid starts get -inf.
        """
        if kind not in ("world_model", "imagination"):
            raise ValueError(f"kind must be 'world_model' or 'imagination', got {kind!r}")
        n = self._size
        assert 1 <= length <= n, (length, n)
        m = n - length + 1
        if self.cfg.sampling == "uniform":
            logits = torch.zeros(m, dtype=torch.float32, device=self.device)
        else:
            c = self._logical_slice(self.wm_count, m).float()  # c_i, (m,)
            if kind == "world_model":
                logits = -c / self.cfg.wm_tau
            else:
                if self.cfg.img_count_scale is None:
                    raise ValueError("replay.img_count_scale is unset: DFS imagination needs it "
                                     "(resolve_config derives it as imag_batch / wm_batch)")
                i_tilde = self._logical_slice(self.img_count, m).float() / self.cfg.img_count_scale
                score = (
                    c
                    - self.cfg.alpha * i_tilde
                    - self.cfg.beta * torch.clamp(c - i_tilde, min=0.0)
                )  # s_i, (m,)
                logits = score / self.cfg.img_tau
        if self.num_valid_starts(length) < m:  # host-side check: a reset inside some window
            valid = valid_starts(self._logical_slice(self.is_first, n), length, False)  # (m,)
            logits = logits.masked_fill(~valid, float("-inf"))
        return logits

    def probabilities(self, kind: str, length: int) -> Tensor:
        """p_i over logical starts [0, N - length] (for inspection and tests)."""
        return torch.softmax(self.start_logits(kind, length), dim=0)

    def draw_starts(self, kind: str, batch_size: int, length: int) -> Tensor:
        """Draw ``batch_size`` distinct logical starts, update the counters; returns (B,) long.

        If fewer valid starts exist than requested (possible just after the warm-up, since each
        reset excludes up to length - 1 starts), the batch is filled by further
        without-replacement passes over the same probabilities, so a start may repeat only then.
        """
        n_valid = self._check_request(batch_size, length)
        logits = self.start_logits(kind, length)  # (m,)
        parts, remaining = [], batch_size
        while remaining > 0:  # one pass unless batch_size > n_valid
            k = min(remaining, n_valid)
            # Gumbel-top-k; Gumbel noise = -log(-log U). Clamps keep keys finite (an inf key
            # plus a -inf logit would be NaN, which topk ranks first).
            u = torch.rand(logits.shape, generator=self.generator, device=self.device)  # (m,)
            noise = u.clamp_(min=1e-30).log_().neg_().clamp_(min=1e-30).log_().neg_()  # (m,)
            parts.append(torch.topk(logits + noise, k, sorted=False).indices)  # (k,) distinct
            remaining -= k
        starts = parts[0] if len(parts) == 1 else torch.cat(parts)  # (B,)
        phys = self._physical(starts)
        counter = self.wm_count if kind == "world_model" else self.img_count
        counter.index_add_(0, phys, torch.ones_like(phys, dtype=torch.int32))
        return starts

    def gather(self, starts: Tensor, length: int) -> dict[str, Tensor]:
        """The windows of ``length`` steps from logical ``starts`` (B,): obs (B, L, 64, 64, 3)
        uint8, action, reward, termination, is_first (B, L); draws nothing, counts nothing."""
        offsets = torch.arange(length, device=self.device)
        idx = self._physical(starts.unsqueeze(1) + offsets)  # (B, L) physical slots
        obs = self.obs.index_select(0, idx.flatten())  # (B*L, 64, 64, 3); 2x faster than obs[idx]
        return {
            "obs": obs.view(*idx.shape, *self.obs_shape),  # (B, L, 64, 64, 3) uint8
            "action": self.action[idx],
            "reward": self.reward[idx],
            "termination": self.termination[idx],
            "is_first": self.is_first[idx],
        }

    def sample_world_model(self, batch_size: int, seq_len: int) -> dict[str, Tensor]:
        """B sequences of L steps, starts by DFS (c_i counters) or uniformly."""
        return self.gather(self.draw_starts("world_model", batch_size, seq_len), seq_len)

    def sample_imagination(self, batch_size: int, context_len: int) -> dict[str, Tensor]:
        """B context windows of L_ctx steps, starts by DFS (s_i scores) or uniformly."""
        return self.gather(self.draw_starts("imagination", batch_size, context_len), context_len)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        n = self._size  # filled physical slots are always [0, n)
        return {
            "config": dataclasses.asdict(self.cfg),
            "obs_shape": self.obs_shape,
            "ptr": self._ptr,
            "size": n,
            # copies: torch.save of a CPU view would write the whole preallocated storage
            "obs": self.obs[:n].to("cpu", copy=True),
            "action": self.action[:n].to("cpu", copy=True),
            "reward": self.reward[:n].to("cpu", copy=True),
            "termination": self.termination[:n].to("cpu", copy=True),
            "is_first": self.is_first[:n].to("cpu", copy=True),
            "wm_count": self.wm_count[:n].to("cpu", copy=True),
            "img_count": self.img_count[:n].to("cpu", copy=True),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd["config"]["capacity"] != self.capacity or tuple(sd["obs_shape"]) != self.obs_shape:
            raise ValueError(
                f"replay checkpoint has capacity {sd['config']['capacity']} and obs shape "
                f"{tuple(sd['obs_shape'])}, this buffer {self.capacity} and {self.obs_shape}"
            )
        n = int(sd["size"])
        for name in ("obs", "action", "reward", "termination", "is_first", "wm_count", "img_count"):
            getattr(self, name)[:n].copy_(sd[name].to(self.device))
        self._is_first_host[:] = False
        self._is_first_host[:n] = sd["is_first"].cpu().numpy()  # any device (resume on CUDA)
        self._ptr, self._size = int(sd["ptr"]), n
        self.generator.set_state(sd["generator"].cpu())  # set_state takes a CPU ByteTensor
