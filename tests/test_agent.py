"""Actor-critic pieces against plain reference implementations, and the imagination alignment."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from drama.agent import ActorCritic, ActorCriticConfig, ReturnNormalizer, RunningNorm, lambda_return
from drama.distributions import TwoHot
from drama.imagination import imagine


def naive_lambda_return(reward, cont, value, gamma, lam, form="official"):
    """One scalar at a time, written from the formulas:
    official:  G_t = r_t + gamma c_t (1 - lam) v_t + gamma c_t lam G_{t+1}   (agents.py)
    dreamerv3: G_t = r_t + gamma c_t ((1 - lam) v_{t+1} + lam G_{t+1});   G_H = v_H for both."""
    B, H = reward.shape
    out = np.zeros((B, H))
    for b in range(B):
        nxt = value[b, H]
        for t in range(H - 1, -1, -1):
            if form == "official":
                nxt = (reward[b, t] + gamma * cont[b, t] * (1 - lam) * value[b, t]
                       + gamma * cont[b, t] * lam * nxt)
            else:
                nxt = reward[b, t] + gamma * cont[b, t] * ((1 - lam) * value[b, t + 1] + lam * nxt)
            out[b, t] = nxt
    return out


@pytest.mark.parametrize("form", ["official", "dreamerv3"])
def test_lambda_return_matches_naive_recursion(form):
    rng = np.random.default_rng(0)
    reward = rng.normal(size=(5, 7))
    cont = (rng.random((5, 7)) > 0.2).astype(float)
    value = rng.normal(size=(5, 8))
    got = lambda_return(torch.tensor(reward), torch.tensor(cont), torch.tensor(value), 0.985, 0.95,
                        form)
    np.testing.assert_allclose(
        got.numpy(), naive_lambda_return(reward, cont, value, 0.985, 0.95, form), rtol=1e-12)


def test_lambda_return_hand_made_sequence_pins_each_form():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    c = torch.ones(1, 3)
    v = torch.tensor([[0.0, 10.0, 20.0, 30.0]])
    g = 0.5
    # lam = 0: one-step targets; official bootstraps v_t, dreamerv3 v_{t+1}
    torch.testing.assert_close(lambda_return(r, c, v, g, 0.0, "official"), r + g * v[:, :-1])
    torch.testing.assert_close(lambda_return(r, c, v, g, 0.0, "dreamerv3"), r + g * v[:, 1:])
    # lam = 1: both are the discounted Monte-Carlo return bootstrapped with v_H
    mc = torch.tensor([[1 + g * 2 + g**2 * 3 + g**3 * 30, 2 + g * 3 + g**2 * 30, 3 + g * 30]])
    for form in ("official", "dreamerv3"):
        torch.testing.assert_close(lambda_return(r, c, v, g, 1.0, form), mc)
    # lam = 0.5 by hand, official: G_2 = 3 + .5(.5*20) + .5(.5*30) = 15.5,
    # G_1 = 2 + .25*10 + .25*15.5 = 8.375, G_0 = 1 + .25*0 + .25*8.375 = 3.09375
    torch.testing.assert_close(lambda_return(r, c, v, g, 0.5, "official"),
                               torch.tensor([[3.09375, 8.375, 15.5]]))
    # dreamerv3: G_2 = 3 + .5(.5*30 + .5*30) = 18, G_1 = 2 + .5(.5*20 + .5*18) = 11.5,
    # G_0 = 1 + .5(.5*10 + .5*11.5) = 6.375
    torch.testing.assert_close(lambda_return(r, c, v, g, 0.5, "dreamerv3"),
                               torch.tensor([[6.375, 11.5, 18.0]]))
    # a terminal at t cuts everything after it (both forms)
    c2 = torch.tensor([[1.0, 0.0, 1.0]])
    for form in ("official", "dreamerv3"):
        assert lambda_return(r, c2, v, g, 0.95, form)[0, 1].item() == 2.0
    with pytest.raises(ValueError, match="form"):
        lambda_return(r, c, v, g, 0.5, "storm")


def test_return_normalizer_percentile_ema():
    torch.manual_seed(0)
    norm = ReturnNormalizer(decay=0.99, low=0.05, high=0.95)
    low = high = 0.0
    for i in range(5):
        ret = torch.randn(64, 16) * (i + 1) * 10
        flat = np.sort(ret.flatten().numpy())
        n = flat.size
        # official: the int(p * N)-th smallest value
        low = 0.99 * low + 0.01 * flat[int(0.05 * n) - 1]
        high = 0.99 * high + 0.01 * flat[int(0.95 * n) - 1]
        scale = norm.update(ret)
        assert math.isclose(norm.low.item(), low, rel_tol=1e-5)
        assert math.isclose(norm.high.item(), high, rel_tol=1e-5)
        assert math.isclose(scale.item(), max(1.0, high - low), rel_tol=1e-5)
    # small returns: the scale floors at 1
    small = ReturnNormalizer()
    assert small.update(torch.full((10, 10), 0.01)).item() == 1.0


def test_running_norm_matches_batch_statistics():
    torch.manual_seed(0)
    norm = RunningNorm(3, clip=10.0)
    xs = [torch.randn(50, 3) * 4 + 2 for _ in range(4)]
    for x in xs:
        norm.update(x)
    allx = torch.cat(xs)
    torch.testing.assert_close(norm.mean, allx.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(norm.var, allx.var(0, unbiased=False), rtol=1e-3, atol=1e-3)
    assert norm(torch.full((1, 3), 1e6)).max().item() == 10.0


def _trajectory(ac, B=8, H=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"feat": torch.randn(B, H + 1, ac.feat_dim, generator=g),
            "action": torch.randint(0, ac.num_actions, (B, H), generator=g),
            "reward": torch.randn(B, H, generator=g),
            "cont": (torch.rand(B, H, generator=g) > 0.1).float()}


@pytest.mark.parametrize("form", ["official", "dreamerv3"])
def test_loss_matches_hand_computation(form):
    torch.manual_seed(0)
    cfg = ActorCriticConfig(actor_hidden=16, critic_hidden=16, layers=2, return_form=form)
    ac = ActorCritic(cfg, feat_dim=12, num_actions=4)
    traj = _trajectory(ac)
    total, m = ac.loss(traj)
    # reference, written plainly with the (already updated) input statistics
    th = TwoHot(255, -20, 20)
    feat = traj["feat"]
    logits = ac.actor((feat[:, :-1] - ac.input_norm.mean) / torch.sqrt(ac.input_norm.var + 1e-8))
    logp = torch.log_softmax(logits, -1)
    raw = ac.critic(feat)
    v = th.mean(raw)
    ret = torch.tensor(naive_lambda_return(traj["reward"].numpy(), traj["cont"].numpy(),
                                           v.detach().double().numpy(), 0.985, 0.95,
                                           cfg.return_form)).float()
    slow_v = th.mean(ac.slow_critic(feat)).detach()
    slow_ret = lambda_return(traj["reward"], traj["cont"], slow_v, 0.985, 0.95, cfg.return_form)
    scale = ac.return_norm.scale()
    adv = (ret - v[:, :-1].detach()) / scale
    pol = -(logp.gather(-1, traj["action"][..., None])[..., 0] * adv).mean()
    ent = -(logp.exp() * logp).sum(-1).mean()
    val = th.loss(raw[:, :-1], ret).mean() + th.loss(raw[:, :-1], slow_ret).mean()
    torch.testing.assert_close(m["loss/policy"], pol.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(total, pol + val - 3e-4 * ent, rtol=1e-4, atol=1e-5)
    # the critic's two-hot target is the encoding of the lambda-return
    torch.testing.assert_close(th.loss(raw[:, :-1], ret),
                               -(th.encode(ret) * torch.log_softmax(raw[:, :-1], -1)).sum(-1))


def test_update_changes_params_and_slow_critic_ema():
    torch.manual_seed(0)
    ac = ActorCritic(ActorCriticConfig(actor_hidden=16, critic_hidden=16, layers=1,
                                       warmup_updates=1, lr=1e-2), 12, 3)
    # output layers start near zero (std 0.001); policy starts near uniform
    probs = ac.policy_logits(torch.randn(4, 12)).exp()
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / 3), atol=1e-2, rtol=0)
    critic0 = [p.clone() for p in ac.critic.parameters()]
    slow0 = [p.clone() for p in ac.slow_critic.parameters()]
    metrics = ac.update(_trajectory(ac))
    assert all(torch.isfinite(v).all() for v in metrics.values())
    pairs = zip(slow0, ac.critic.parameters(), ac.slow_critic.parameters(), strict=True)
    for s0, c1, s1 in pairs:
        torch.testing.assert_close(s1, 0.98 * s0 + 0.02 * c1)
    assert any(not torch.equal(a, b)
               for a, b in zip(critic0, ac.critic.parameters(), strict=True))


def test_paper_sizes():
    ac = ActorCritic(ActorCriticConfig(), feat_dim=1536, num_actions=6)
    counts = ac.parameter_counts()
    lin = lambda i, o: i * o + o  # noqa: E731
    assert counts["actor"] == lin(1536, 256) + 2 * lin(256, 256) + 3 * 256 + lin(256, 6)
    assert counts["critic"] == lin(1536, 512) + 2 * lin(512, 512) + 3 * 512 + lin(512, 255)


class ScriptedWorldModel(nn.Module):
    """A hand-made world model with the drama.world_model interface, for alignment checks.

    d_t = one-hot(a_t) (+ a step counter); reward head: +1 iff the action *taken* was 1;
    termination head: terminal iff the action taken was 2. Latents are all-zero.
    """

    num_actions, stoch = 3, 4

    def encode(self, obs):
        return torch.zeros(*obs.shape[:-3], 2, 2)

    def sample(self, logits):
        return torch.zeros(*logits.shape[:-2], self.stoch)

    def init_state(self, batch_size):
        return torch.zeros(batch_size, 1)

    def step(self, z, a, state):
        d = torch.cat([nn.functional.one_hot(a, self.num_actions).float(), state + 1], -1)
        return d, state + 1

    def prior_logits(self, d):
        return torch.zeros(*d.shape[:-1], 2, 2)

    def reward(self, d):
        return d[..., 1]

    def termination(self, d):
        return d[..., 2] * 2 - 1  # logit > 0 iff a == 2


def _scripted_start(B=64):
    return {"obs": torch.zeros(B, 3, 64, 64, 3, dtype=torch.uint8),
            "action": torch.tensor([[2, 1, 0]]).repeat(B, 1),
            "is_first": torch.zeros(B, 3, dtype=torch.bool)}


def test_imagination_official_start_and_reward_index():
    """Official (imagine_data2): all C context actions observed, s_0 = (prior(d_{C-1}),
    d_{C-1}); reward[i] and cont[i] from the heads on the feature before imagined action i."""
    torch.manual_seed(0)
    wm = ScriptedWorldModel()
    ac = ActorCritic(ActorCriticConfig(actor_hidden=8, critic_hidden=8, layers=1), 4 + 4, 3)
    assert (ac.cfg.imag_start, ac.cfg.return_form) == ("prior", "official")  # the defaults
    B, C, H = 64, 3, 6
    start = _scripted_start(B)
    traj = imagine(wm, ac, start, H)
    assert traj["feat"].shape == (B, H + 1, 8) and traj["action"].shape == (B, H)
    a = traj["action"]
    h = traj["feat"][..., 4:7]  # one-hot of the action that led into s_t
    # s_0 holds d_{C-1}: the last real action (0) went through the sequence model, and all C
    # context steps ran (counter = C)
    torch.testing.assert_close(h[:, 0], nn.functional.one_hot(torch.zeros(B).long(), 3).float())
    torch.testing.assert_close(traj["feat"][:, 0, 7], torch.full((B,), float(C)))
    torch.testing.assert_close(h[:, 1:], nn.functional.one_hot(a, 3).float())
    # reward[0] belongs to the last real action (0: no reward), reward[i] to imagined a_{i-1}
    prev = torch.cat([torch.zeros(B, 1, dtype=torch.long), a[:, :-1]], 1)  # action into s_i
    torch.testing.assert_close(traj["reward"], (prev == 1).float())
    torch.testing.assert_close(traj["cont"], (prev != 2).float())
    # is_first inside the context is ignored (official: nothing resets the sequence model)
    start["is_first"][:, 1:] = True
    traj2 = imagine(wm, ac, start, H)
    torch.testing.assert_close(traj2["feat"][:, 0, 4:], traj["feat"][:, 0, 4:])


def test_imagination_official_start_is_the_prior_of_the_parallel_pass():
    """On a real (debug-sized) world model: h_0 equals the parallel pass's last output over the
    C context frames and actions, and z_0 is a sample of the prior on it."""
    from drama.world_model import WorldModel, WorldModelConfig

    torch.manual_seed(0)
    wm = WorldModel(WorldModelConfig(d_model=32, n_layers=1, stoch=4, classes=4,
                                     encoder_depth=4, head_hidden=16), 3).eval()
    ac = ActorCritic(ActorCriticConfig(actor_hidden=8, critic_hidden=8, layers=1), 16 + 32, 3)
    B, C = 5, 4
    g = torch.Generator().manual_seed(1)
    start = {"obs": torch.randint(0, 256, (B, C, 64, 64, 3), generator=g, dtype=torch.uint8),
             "action": torch.randint(0, 3, (B, C), generator=g)}
    torch.manual_seed(7)
    traj = imagine(wm, ac, start, 3)
    torch.manual_seed(7)  # same draws: posterior samples of the context, then the prior sample
    z_ctx = wm.sample(wm.encode(start["obs"]))
    d = wm.observe(z_ctx, start["action"])[:, -1]  # (B, D) parallel pass
    z0 = wm.sample(wm.prior_logits(d))
    torch.testing.assert_close(traj["feat"][:, 0, 16:], d, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(traj["feat"][:, 0, :16], z0)
    # official reward index: reward[i] is the head on h_i (h_0 = d after the last real action)
    torch.testing.assert_close(traj["reward"], wm.reward(traj["feat"][:, :-1, 16:]))
    traj_d = imagine(wm, ac, start, 3, return_form="dreamerv3")
    torch.testing.assert_close(traj_d["reward"], wm.reward(traj_d["feat"][:, 1:, 16:]))


def test_imagination_corrected_posterior_start_and_reward_for_the_action():
    """Switches imag_start=posterior, return_form=dreamerv3 (variant corrected): reward[t] is
    the consequence of action[t]; s_0 = (posterior z_{C-1}, d_{C-2})."""
    torch.manual_seed(0)
    wm = ScriptedWorldModel()
    ac = ActorCritic(ActorCriticConfig(actor_hidden=8, critic_hidden=8, layers=1,
                                       imag_start="posterior", return_form="dreamerv3"), 8, 3)
    B, C, H = 64, 3, 6
    start = _scripted_start(B)
    traj = imagine(wm, ac, start, H)
    assert traj["feat"].shape == (B, H + 1, 8) and traj["action"].shape == (B, H)
    a = traj["action"]
    # reward[t] is the consequence of action[t] (not of action[t-1], nor of the context)
    torch.testing.assert_close(traj["reward"], (a == 1).float())
    torch.testing.assert_close(traj["cont"], (a != 2).float())
    # h_t in s_t is d_{t-1}: s_0 = (posterior z_{C-1}, d_{C-2}) carries the second-to-last
    # context action (1; the last real action, 0, is not used), s_t carries a_{t-1}
    h = traj["feat"][..., 4:7]
    torch.testing.assert_close(h[:, 0], nn.functional.one_hot(torch.full((B,), 1), 3).float())
    torch.testing.assert_close(h[:, 1:], nn.functional.one_hot(a, 3).float())
    # the first C-1 context frames ran through step (counter = C-1) before imagining
    torch.testing.assert_close(traj["feat"][:, 0, 7], torch.full((B,), float(C - 1)))
    # a context whose last frame starts an episode gives s_0 the fresh state (h = 0), as acting
    start["is_first"][:, -1] = True
    traj = imagine(wm, ac, start, H)
    torch.testing.assert_close(traj["feat"][:, 0, 4:], torch.zeros(B, 4))
    # hand-made sequence: reward only for the action at t = 2 -> the lambda-return at t = 2
    # contains it undiscounted, at t = 3 not at all, at t = 1 discounted once
    r = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    ret = lambda_return(r, torch.ones(1, 4), torch.zeros(1, 5), 0.9, 1.0)
    torch.testing.assert_close(ret, torch.tensor([[0.81, 0.9, 1.0, 0.0]]))


def test_non_finite_actor_critic_update_is_skipped():
    torch.manual_seed(0)
    ac = ActorCritic(ActorCriticConfig(actor_hidden=16, critic_hidden=16, layers=1), 12, 3)
    ac.update(_trajectory(ac))
    before = {k: v.clone() for k, v in ac.state_dict().items()}
    traj = _trajectory(ac, seed=1)
    traj["reward"][0, 1] = float("inf")
    m = ac.update(traj)
    assert not bool(m["finite"])
    changed = {k for k, v in ac.state_dict().items() if not torch.equal(v, before[k])}
    # only the slow critic's EMA (towards the unchanged critic, as officially) and the input
    # statistics of the (finite) features move; networks and return-scale EMAs do not
    allowed = {k for k in before if k.startswith(("slow_critic.", "input_norm."))}
    assert changed <= allowed and "return_norm.low" not in changed, changed
    # non-finite features leave the input statistics as they were
    stats = {k: v.clone() for k, v in ac.input_norm.state_dict().items()}
    traj = _trajectory(ac, seed=3)
    traj["feat"][0, 0, 0] = float("nan")
    assert not bool(ac.update(traj)["finite"])
    for k, v in ac.input_norm.state_dict().items():
        assert torch.equal(v, stats[k]), k
    assert bool(ac.update(_trajectory(ac, seed=2))["finite"])
