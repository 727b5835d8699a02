"""Imagined rollouts through the world model's recurrent ``step``.

Time alignment (replay index t, as in drama/world_model.py): d_t = seq(z_t, a_t); the reward
and termination heads on d_t predict the consequences of a_t; prior(d_t) predicts z_{t+1}.

An imagined trajectory of horizon H has states s_0..s_H with s_t = concat(z_t, h_t), where h_t
is the sequence output *before* z_t (h_t = d_{t-1}):
    context: of the replay's C real frames, the first C-1 (posterior z_c, real a_c) are fed
             through ``step``; the start state is s_0 = (posterior z_{C-1}, d_{C-2}), exactly
             the features acting uses at a real step (drama/evaluate.py: posterior of the
             current frame + the previous sequence output), so the actor is trained on the
             kind of state it acts from. The last real action is not used. (The official code
             starts from the prior sample of d_{C-1} and also acts from the prior; DreamerV3
             starts imagination from posterior states, as we do.)
    for t in 0..H-1: a_t ~ pi(s_t); d_t = step(z_t, a_t); reward[t] = r^(d_t);
             cont[t] = 1 - [term_logit(d_t) > 0]; h_{t+1} = d_t; z_{t+1} ~ prior(d_t).
so reward[t] is the reward *for* a_t (STORM's alignment, the one the official Transformer
path uses). The official Mamba path (imagine_data2) instead pairs reward[t] with the
transition *into* s_t (the reward head on d_{t-1}), which credits a_t with the reward of
a_{t-1}; we deliberately do not copy that (README deviations; tests/test_agent.py checks the
alignment on a hand-made sequence).

The context could instead run through the parallel ``observe``; we use ``step`` for context
and horizon alike so the recurrent state after the context is available without a separate
state-extraction API (eval-equivalent by the sequence models' contract).
"""

from __future__ import annotations

import torch
from torch import Tensor

from drama.agent import ActorCritic


def _reset_rows(state, fresh, mask: Tensor):
    """Where ``mask`` (B,) is True, replace batch rows of every tensor in ``state`` by ``fresh``.

    States are nested tuples/lists/dicts of tensors with the batch on dim 0 (the sequence
    models' contract); anything else is returned unchanged.
    """
    if isinstance(state, Tensor):
        if state.ndim == 0 or state.shape[0] != mask.shape[0]:
            return state
        m = mask.reshape(-1, *([1] * (state.ndim - 1)))
        return torch.where(m, fresh, state)
    if isinstance(state, dict):
        return {k: _reset_rows(v, fresh[k], mask) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        out = [_reset_rows(s, f, mask) for s, f in zip(state, fresh, strict=True)]
        return type(state)(out) if isinstance(state, list) else tuple(out)
    return state


@torch.no_grad()
def observe_context(wm, z: Tensor, action: Tensor, is_first: Tensor | None = None):
    """Run real context latents through ``wm.step``; returns (h (B, D), state).

    ``z`` (B, C, S*K) posterior samples, ``action`` (B, C) long, ``is_first`` (B, C) bool: rows
    whose context crosses an episode start have their recurrent state reset there. With C = 0
    the result is the fresh state and h = 0, as at an episode start when acting.
    """
    assert z.ndim == 3 and action.shape == z.shape[:2], (z.shape, action.shape)
    B, C = action.shape
    state = wm.init_state(B)
    d = None
    for t in range(C):
        if is_first is not None and t > 0:
            state = _reset_rows(state, wm.init_state(B), is_first[:, t])
        d, state = wm.step(z[:, t], action[:, t].long(), state)  # (B, D)
    if d is None:  # C == 0
        d = torch.zeros(B, wm.cfg.d_model, device=z.device)
    return d, state


@torch.no_grad()
def imagine(wm, ac: ActorCritic, start: dict[str, Tensor], horizon: int) -> dict[str, Tensor]:
    """Imagine ``horizon`` steps from replay context ``start`` (``sample_imagination`` dict).

    Returns feat (B, H+1, F), action (B, H) long, reward (B, H), cont (B, H) float.
    """
    obs, action, is_first = start["obs"], start["action"], start.get("is_first")
    assert obs.ndim == 5 and action.shape == obs.shape[:2], (obs.shape, action.shape)
    z_ctx = wm.sample(wm.encode(obs))  # (B, C, S*K) posterior samples
    h, state = observe_context(
        wm, z_ctx[:, :-1], action[:, :-1], None if is_first is None else is_first[:, :-1]
    )
    z = z_ctx[:, -1]  # s_0 = (posterior z_{C-1}, d_{C-2})
    if is_first is not None and obs.shape[1] > 1:  # the last frame starts a new episode
        new = is_first[:, -1]  # (B,)
        state = _reset_rows(state, wm.init_state(obs.shape[0]), new)
        h = torch.where(new[:, None], torch.zeros_like(h), h)
    feats, actions, rewards, conts = [], [], [], []
    for _ in range(horizon):
        feat = torch.cat([z, h], dim=-1)  # (B, F)
        a = ac.act(feat)  # (B,)
        d, state = wm.step(z, a, state)  # (B, D)
        feats.append(feat)
        actions.append(a)
        rewards.append(wm.reward(d).float())
        conts.append((wm.termination(d) <= 0).float())
        h, z = d, wm.sample(wm.prior_logits(d))
    feats.append(torch.cat([z, h], dim=-1))
    return {
        "feat": torch.stack(feats, 1).float(),  # (B, H+1, F)
        "action": torch.stack(actions, 1),  # (B, H)
        "reward": torch.stack(rewards, 1),  # (B, H)
        "cont": torch.stack(conts, 1),  # (B, H)
    }
