"""Actor-critic pieces against plain reference implementations, and the imagination alignment."""

import math

import numpy as np
import torch
from torch import nn

from drama.agent import ActorCritic, ActorCriticConfig, ReturnNormalizer, RunningNorm, lambda_return
from drama.distributions import TwoHot
from drama.imagination import imagine


def naive_lambda_return(reward, cont, value, gamma, lam):
    """R_t = r_t + gamma c_t ((1 - lam) v_{t+1} + lam R_{t+1}), R_H = v_H, one scalar at a time."""
    B, H = reward.shape
    out = np.zeros((B, H))
    for b in range(B):
        nxt = value[b, H]
        for t in range(H - 1, -1, -1):
            nxt = reward[b, t] + gamma * cont[b, t] * ((1 - lam) * value[b, t + 1] + lam * nxt)
            out[b, t] = nxt
    return out


def test_lambda_return_matches_naive_recursion():
    rng = np.random.default_rng(0)
    reward = rng.normal(size=(5, 7))
    cont = (rng.random((5, 7)) > 0.2).astype(float)
    value = rng.normal(size=(5, 8))
    got = lambda_return(torch.tensor(reward), torch.tensor(cont), torch.tensor(value), 0.985, 0.95)
    np.testing.assert_allclose(got.numpy(), naive_lambda_return(reward, cont, value, 0.985, 0.95),
                               rtol=1e-12)


def test_lambda_return_special_cases():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    c = torch.ones(1, 3)
    v = torch.tensor([[0.0, 10.0, 20.0, 30.0]])
    # lam = 0: one-step TD targets r_t + gamma v_{t+1}
    torch.testing.assert_close(lambda_return(r, c, v, 0.5, 0.0), r + 0.5 * v[:, 1:])
    # lam = 1: discounted Monte-Carlo return bootstrapped with v_H
    mc = torch.tensor(
        [[1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 30, 2 + 0.5 * 3 + 0.25 * 30, 3 + 0.5 * 30]])
    torch.testing.assert_close(lambda_return(r, c, v, 0.5, 1.0), mc)
    # a terminal at t cuts everything after it
    c2 = torch.tensor([[1.0, 0.0, 1.0]])
    assert lambda_return(r, c2, v, 0.5, 0.95)[0, 1].item() == 2.0


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


def test_loss_matches_hand_computation():
    torch.manual_seed(0)
    cfg = ActorCriticConfig(actor_hidden=16, critic_hidden=16, layers=2)
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
                                           v.detach().double().numpy(), 0.985, 0.95)).float()
    slow_v = th.mean(ac.slow_critic(feat)).detach()
    slow_ret = lambda_return(traj["reward"], traj["cont"], slow_v, 0.985, 0.95)
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


def test_imagination_reward_aligned_with_the_action_that_earns_it():
    torch.manual_seed(0)
    wm = ScriptedWorldModel()
    ac = ActorCritic(ActorCriticConfig(actor_hidden=8, critic_hidden=8, layers=1), 4 + 4, 3)
    B, C, H = 64, 3, 6
    start = {"obs": torch.zeros(B, C, 64, 64, 3, dtype=torch.uint8),
             "action": torch.tensor([[2, 1, 0]]).repeat(B, 1),
             "is_first": torch.zeros(B, C, dtype=torch.bool)}
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
