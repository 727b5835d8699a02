"""Acting: the official 16-frame context rule, and the recurrent switch (incl. the Transformer's
bounded KV cache)."""

import numpy as np
import torch

from drama.agent import ActorCritic, ActorCriticConfig
from drama.evaluate import RecurrentActor
from drama.world_model import WorldModel, WorldModelConfig


def _tiny(kind, **seq_options):
    cfg = WorldModelConfig(sequence_kind=kind, d_model=32, n_layers=1, stoch=4, classes=4,
                           encoder_depth=2, head_hidden=16, sequence_options=seq_options)
    wm = WorldModel(cfg, num_actions=3).eval()
    ac = ActorCritic(ActorCriticConfig(actor_hidden=8, critic_hidden=8, layers=1),
                     feat_dim=16 + 32, num_actions=3).eval()
    return wm, ac


def test_transformer_acts_past_its_cache_by_rebuilding_from_the_window():
    torch.manual_seed(0)
    wm, ac = _tiny("transformer", max_len=24)
    actor = RecurrentActor(wm, ac, batch=2, device=torch.device("cpu"))
    assert actor.limit == 24
    frames = np.random.default_rng(0).integers(0, 256, size=(60, 2, 64, 64, 3), dtype=np.uint8)
    for t in range(60):  # well past max_len: must not fail
        actor.act(frames[t], greedy=True)
        assert actor.steps <= 24
    # after a rebuild, the state equals a fresh pass over the window alone
    actor2 = RecurrentActor(wm, ac, batch=2, device=torch.device("cpu"))
    window = actor.history  # the last ACT_WINDOW (z, a) inputs
    assert len(window) == RecurrentActor.ACT_WINDOW
    # drive actor to a rebuild point and compare h with a replay of its window
    while actor.steps < actor.limit:
        actor.act(frames[0], greedy=True)
    hist = list(actor.history)
    torch.manual_seed(1)
    actor.act(frames[1], greedy=True)  # rebuild + one step
    z_new, a_new = actor.history[-1]
    state = wm.init_state(2)
    for z_i, a_i in [*hist, (z_new, a_new)]:
        h, state = wm.step(z_i, a_i, state)
    torch.testing.assert_close(actor.h, h)
    assert actor.steps == RecurrentActor.ACT_WINDOW + 1
    # the actor's state round-trips through state_dict (checkpoints)
    actor2.load_state_dict(actor.state_dict())
    torch.testing.assert_close(actor2.h, actor.h)
    assert actor2.steps == actor.steps and len(actor2.history) == len(actor.history)


def test_unbounded_models_carry_state_through_the_episode():
    torch.manual_seed(0)
    wm, ac = _tiny("mamba2", chunk_size=16)
    actor = RecurrentActor(wm, ac, batch=1, device=torch.device("cpu"))
    assert actor.limit is None
    frames = np.random.default_rng(0).integers(0, 256, size=(40, 1, 64, 64, 3), dtype=np.uint8)
    for t in range(40):
        actor.act(frames[t])
    assert actor.steps == 40 and actor.history == []


# -- the official acting rule (actor_critic.acting=context, the default) ----------------------


def _reference_action(wm, ac, frames, actions, seed):
    """Official calc_last_dist_feat written plainly: posterior samples of the context frames,
    a fresh parallel pass, the prior sample of the last output; greedy action on (z, d)."""
    torch.manual_seed(seed)
    post = wm.encode(torch.from_numpy(np.stack(frames, 1)))  # (B, L, S, K)
    z_ctx = wm.sample(post)
    d = wm.observe(z_ctx, torch.stack(actions, 1))[:, -1]
    z = wm.sample(wm.prior_logits(d))
    feat = torch.cat([z, d], -1)
    return feat, ac.act(feat, greedy=True)


def test_context_actor_is_the_official_acting_rule():
    from drama.evaluate import ContextActor, make_actor

    torch.manual_seed(0)
    wm, ac = _tiny("mamba2", chunk_size=16)
    assert ac.cfg.acting == "context" and ac.cfg.acting_context == 16  # the defaults
    actor = make_actor(wm, ac, 2, torch.device("cpu"))
    assert isinstance(actor, ContextActor)
    frames = np.random.default_rng(0).integers(0, 256, size=(25, 2, 64, 64, 3), dtype=np.uint8)
    # the first action of an episode is random: the context is empty, nothing is computed
    actor.act(frames[0], greedy=True)
    assert actor.last_feat is None and len(actor.post) == 1
    seen = [frames[0]]
    for t in range(1, 25):
        acts_before = list(actor.actions)
        torch.manual_seed(100 + t)
        got = actor.act(frames[t], greedy=True)
        # the context is the last 16 frames *before* t with their actions; o_t is not used
        ctx = seen[-16:]
        assert len(acts_before) == len(ctx) == min(t, 16)
        feat, want = _reference_action(wm, ac, ctx, acts_before, 100 + t)
        torch.testing.assert_close(actor.last_feat, feat)
        np.testing.assert_array_equal(got, want.numpy())
        seen.append(frames[t])
        assert len(actor.post) == min(t + 1, 16)  # o_t appended only after acting
    # the current frame does not change the action (same noise, different o_t)
    saved = actor.state_dict()
    torch.manual_seed(5)
    a1 = actor.act(frames[0], greedy=True)
    actor.load_state_dict(saved)
    torch.manual_seed(5)
    a2 = actor.act(np.zeros_like(frames[0]), greedy=True)
    np.testing.assert_array_equal(a1, a2)
    # reset (episode start) empties the context; state_dict round-trips (checkpoints)
    actor2 = ContextActor(wm, ac, 2, torch.device("cpu"))
    actor2.load_state_dict(actor.state_dict())
    assert len(actor2.post) == len(actor.post) and all(
        torch.equal(x, y) for x, y in zip(actor2.actions, actor.actions, strict=True))
    actor.reset(2)
    assert actor.post == [] and actor.actions == []
    # the random warm-up keeps no context (official: context only once the buffer is ready)
    out = actor.act(frames[1], policy=False, random_actions=np.array([2, 1]))
    np.testing.assert_array_equal(out, [2, 1])
    assert actor.post == []


def test_recurrent_switch_and_acting_state_kind_checked():
    from drama.evaluate import ContextActor, make_actor

    wm, _ = _tiny("mamba2", chunk_size=16)
    ac = ActorCritic(ActorCriticConfig(actor_hidden=8, critic_hidden=8, layers=1,
                                       acting="recurrent"), feat_dim=48, num_actions=3)
    actor = make_actor(wm, ac, 1, torch.device("cpu"))
    assert isinstance(actor, RecurrentActor)
    import pytest

    with pytest.raises(ValueError, match="acting"):
        ContextActor(wm, ac, 1, torch.device("cpu")).load_state_dict(actor.state_dict())
    with pytest.raises(ValueError, match="acting"):
        ActorCriticConfig(acting="posterior")


class _ShortEpisodes:
    """Episodes of 3 + seed % 4 steps of random frames; records the seeds it was reset with."""

    def __init__(self):
        self.resets, self.t, self.n = [], 0, 0
        self.rng = np.random.default_rng(0)

    def reset(self, seed=None):
        self.resets.append(seed)
        self.t, self.n = 0, 3 + seed % 4
        return self.rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), {}

    def step(self, action):
        self.t += 1
        frame = self.rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        return frame, 1.0, self.t >= self.n, False, {}


def test_evaluation_context_carried_across_episodes_or_fresh(monkeypatch):
    """train.eval_context: ``carry`` (the release's eval.py) plays each slot's episodes back to
    back with one acting context (one random first action in all); ``fresh`` starts every wave
    with an empty context. Same episodes, seeds and lengths either way."""
    from drama.evaluate import ContextActor, evaluate

    wm, ac = _tiny("mamba2", chunk_size=16)
    calls = {"act": 0, "features": 0}
    act, features = ContextActor.act, ContextActor.features

    def counted_act(self, *a, **kw):
        calls["act"] += 1
        return act(self, *a, **kw)

    def counted_features(self):
        calls["features"] += 1
        return features(self)

    monkeypatch.setattr(ContextActor, "act", counted_act)
    monkeypatch.setattr(ContextActor, "features", counted_features)
    seeds = [10, 11, 12, 13, 14]  # lengths 5, 6, 3, 4, 5
    out = {}
    for carry in (True, False):
        calls.update(act=0, features=0)
        envs = [_ShortEpisodes(), _ShortEpisodes()]
        res = evaluate(wm, ac, envs, seeds, greedy=True, torch_seed=0,
                       device=torch.device("cpu"), carry_context=carry)
        assert [n for _, n in res] == [3 + s % 4 for s in seeds]
        assert [r for r, _ in res] == [float(3 + s % 4) for s in seeds]
        out[carry] = (calls["act"] - calls["features"], [e.resets for e in envs])
    random_steps, resets = out[True]
    assert random_steps == 1  # only the very first step of the evaluation had no context
    assert resets == [[10, 12, 14], [11, 13]]  # slot j plays episodes j, j + 2, ...
    random_steps, resets = out[False]
    assert random_steps == 3  # one per wave: every wave starts with an empty context
    assert resets == [[10, 12, 14], [11, 13]]
