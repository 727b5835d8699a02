"""Imagined rollouts through the world model's recurrent ``step``.

Time alignment (replay index t, as in drama/world_model.py): d_t = seq(z_t, a_t); the reward
and termination heads on d_t predict the consequences of a_t; prior(d_t) predicts z_{t+1}.

An imagined trajectory of horizon H has states s_0..s_H with s_t = concat(z_t, h_t), where h_t
is the sequence output *before* z_t (h_t = d_{t-1}). Two starts (``actor_critic.imag_start``):
    prior (official ``imagine_data2``, the default): all C real context frames (posterior
             samples) and their C real actions are observed; s_0 = (z ~ prior(d_{C-1}),
             d_{C-1}), the state after the last real action. No reset inside the context
             (official: windows may span an episode reset, nothing marks it).
    posterior (our correction, variant ``corrected``): the first C-1 frames and actions are
             observed; s_0 = (posterior z_{C-1}, d_{C-2}), the features ``acting=recurrent``
             acts from; the last real action is not used; a context row that crosses an
             episode start has its state reset there.
Then for t in 0..H-1: a_t ~ pi(s_t); d_t = step(z_t, a_t); h_{t+1} = d_t; z_{t+1} ~ prior(d_t).
Rewards and continuations (``actor_critic.return_form``):
    official (``imagine_data2``): reward[t], cont[t] from the heads on h_t, t = 0..H-1: the
             consequences of the transition *into* s_t (reward[0] belongs to the last real
             action when the start is ``prior``); paired with the official lambda-return
             (drama/agent.py).
    dreamerv3 (our correction): reward[t], cont[t] from the heads on d_t = h_{t+1}: the
             consequences of a_t itself (STORM, DreamerV3).
tests/test_agent.py pins each alignment on a hand-made world model.

The context runs through ``step`` (C recurrent steps) rather than the parallel pass, so the
state after it is available without a separate state-extraction API; the two are equal by the
sequence models' contract (tests/test_sequence_models.py).
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
def imagine(wm, ac: ActorCritic, start: dict[str, Tensor], horizon: int,
            imag_start: str | None = None, return_form: str | None = None) -> dict[str, Tensor]:
    """Imagine ``horizon`` steps from replay context ``start`` (``sample_imagination`` dict).

    ``imag_start`` / ``return_form`` default to ``ac.cfg``'s (see the module docstring).
    Returns feat (B, H+1, F), action (B, H) long, reward (B, H), cont (B, H) float.
    """
    imag_start = imag_start or ac.cfg.imag_start
    return_form = return_form or ac.cfg.return_form
    obs, action, is_first = start["obs"], start["action"], start.get("is_first")
    assert obs.ndim == 5 and action.shape == obs.shape[:2], (obs.shape, action.shape)
    z_ctx = wm.sample(wm.encode(obs))  # (B, C, S*K) posterior samples
    if imag_start == "prior":  # official: observe all C (frame, action) pairs, no resets
        h, state = observe_context(wm, z_ctx, action)  # h = d_{C-1}
        z = wm.sample(wm.prior_logits(h))  # s_0 = (prior sample of d_{C-1}, d_{C-1})
    elif imag_start == "posterior":
        h, state = observe_context(
            wm, z_ctx[:, :-1], action[:, :-1], None if is_first is None else is_first[:, :-1]
        )
        z = z_ctx[:, -1]  # s_0 = (posterior z_{C-1}, d_{C-2})
        if is_first is not None and obs.shape[1] > 1:  # the last frame starts a new episode
            new = is_first[:, -1]  # (B,)
            state = _reset_rows(state, wm.init_state(obs.shape[0]), new)
            h = torch.where(new[:, None], torch.zeros_like(h), h)
    else:
        raise ValueError(f"unknown imag_start {imag_start!r}; use 'prior' or 'posterior'")
    if return_form not in ("official", "dreamerv3"):
        raise ValueError(f"unknown return_form {return_form!r}; use 'official' or 'dreamerv3'")
    feats, actions, hs = [], [], [h]
    for _ in range(horizon):
        feat = torch.cat([z, h], dim=-1)  # (B, F)
        a = ac.act(feat)  # (B,)
        d, state = wm.step(z, a, state)  # (B, D)
        feats.append(feat)
        actions.append(a)
        h, z = d, wm.sample(wm.prior_logits(d))
        hs.append(h)
    feats.append(torch.cat([z, h], dim=-1))
    h_all = torch.stack(hs, 1)  # (B, H+1, D): h_0 .. h_H
    # official: heads on h_t (before a_t), t = 0..H-1; dreamerv3: heads on d_t = h_{t+1}
    h_rew = h_all[:, :-1] if return_form == "official" else h_all[:, 1:]  # (B, H, D)
    return {
        "feat": torch.stack(feats, 1).float(),  # (B, H+1, F)
        "action": torch.stack(actions, 1),  # (B, H)
        "reward": wm.reward(h_rew).float(),  # (B, H)
        "cont": (wm.termination(h_rew) <= 0).float(),  # (B, H)
    }
