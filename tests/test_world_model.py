"""World model: exact parameter counts, interfaces, loss definitions, learning on real frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drama.distributions import TwoHot, categorical_kl
from drama.world_model import WorldModel, WorldModelConfig

# Computed from the official code's layer shapes (issue 4); Boxing (18 actions) matches the
# official start-up printout: 7,161,603 = encoder 232,272 + decoder 1,281,811 + latent heads
# 1,574,912 + sequence model 3,743,648 (+ reward 197,119 + termination 131,841).
PAPER_COUNTS = {
    "encoder": 232_272,
    "latent_heads": 1_574_912,
    "decoder": 1_281_811,
    "reward_head": 197_119,
    "termination_head": 131_841,
}


def debug_cfg(**kw) -> WorldModelConfig:
    base = dict(d_model=32, encoder_depth=2, head_hidden=16, stoch=4, classes=4,
                warmup_updates=0, lr=1e-3)  # fmt: skip
    return WorldModelConfig(**{**base, **kw})


def random_batch(B: int, T: int, A: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randint(0, 256, (B, T, 64, 64, 3), dtype=torch.uint8, generator=g),
        "action": torch.randint(0, A, (B, T), generator=g),
        "reward": torch.randn(B, T, generator=g),
        "termination": (torch.rand(B, T, generator=g) < 0.2).float(),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
    }


@pytest.mark.parametrize("num_actions,total", [(3, 7_153_923), (6, 7_155_459), (18, 7_161_603)])
def test_parameter_counts_match_official(num_actions, total):
    counts = WorldModel(WorldModelConfig(), num_actions).parameter_counts()
    for key, want in PAPER_COUNTS.items():
        assert counts[key] == want, (key, counts[key], want)
    assert counts["sequence_model"] == 3_735_968 + 512 * (num_actions - 3)
    assert counts["world_model"] == total


def test_config_defaults_and_from_dict():
    cfg = WorldModelConfig()
    assert (cfg.sequence_kind, cfg.d_model, cfg.n_layers, cfg.stoch, cfg.classes) == (
        "mamba2", 512, 2, 32, 32)  # fmt: skip
    assert (cfg.lr, cfg.eps, cfg.weight_decay, cfg.grad_clip, cfg.warmup_updates) == (
        4e-5, 1e-20, 1e-4, 1000.0, 1000)  # fmt: skip
    assert (cfg.free_bits, cfg.kl_dyn, cfg.kl_rep, cfg.unimix) == (1.0, 1.0, 0.1, 0.01)
    cfg2 = WorldModelConfig.from_dict({"encoder_mults": [1, 2], "betas": [0.9, 0.99]})
    assert cfg2.encoder_mults == (1, 2) and cfg2.betas == (0.9, 0.99)
    with pytest.raises(ValueError, match="d_modle"):
        WorldModelConfig.from_dict({"d_modle": 3})
    with pytest.raises(ValueError, match="kernel"):
        WorldModelConfig(kernel=4)
    with pytest.raises(ValueError, match="sequence_kind='lstm'"):
        WorldModel(debug_cfg(sequence_kind="lstm"), 3)
    with pytest.raises(ValueError, match="num_actions"):
        WorldModel(debug_cfg(), 0)


def test_interfaces_shapes_and_step_equals_parallel():
    torch.manual_seed(0)
    wm = WorldModel(debug_cfg(), num_actions=5).eval()
    B, T = 3, 6
    batch = random_batch(B, T, 5)
    post = wm.encode(batch["obs"])
    assert post.shape == (B, T, 4, 4)
    torch.testing.assert_close(post.exp().sum(-1), torch.ones(B, T, 4))
    assert post.exp().min() >= 0.01 / 4 - 1e-7  # 1% unimix floor
    z = wm.sample(post)
    assert z.shape == (B, T, 16)
    torch.testing.assert_close(z.detach(), z.detach().round())  # one-hot values (forward)
    torch.testing.assert_close(z.detach().reshape(B, T, 4, 4).sum(-1), torch.ones(B, T, 4))
    with torch.no_grad():
        d = wm.observe(z, batch["action"])
        state = wm.init_state(B)
        steps = []
        for t in range(T):
            d_t, state = wm.step(z[:, t], batch["action"][:, t], state)
            steps.append(d_t)
    assert d.shape == (B, T, 32)
    torch.testing.assert_close(torch.stack(steps, 1), d, rtol=1e-4, atol=1e-5)
    assert wm.prior_logits(d).shape == (B, T, 4, 4)
    assert wm.reward(d).shape == (B, T) and wm.reward(d).dtype == torch.float32
    assert wm.termination(d).shape == (B, T)
    frames = wm.decode(z)
    assert frames.shape == (B, T, 64, 64, 3) and 0 <= frames.min() and frames.max() <= 1
    with pytest.raises(ValueError, match="uint8"):
        wm.encode(batch["obs"].float())


def test_loss_matches_definition():
    """Recompute every term from the public pieces under the same random stream."""
    wm = WorldModel(debug_cfg(free_bits=0.0), num_actions=4).train()
    batch = random_batch(2, 5, 4, seed=1)
    torch.manual_seed(7)
    total, m = wm.loss(batch)

    torch.manual_seed(7)
    post = wm.encode(batch["obs"])  # (B, T, S, K)
    z = wm.sample(post)
    x = batch["obs"].float() / 255
    rec = (wm.decode(z) - x).square().sum((-3, -2, -1)).mean()
    d = wm.observe(z, batch["action"])
    prior = wm.prior_logits(d)
    rew = TwoHot(255, -20, 20).loss(wm.reward_head(d), batch["reward"]).mean()
    p = torch.sigmoid(wm.termination(d))
    y = batch["termination"]
    term = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    kl = categorical_kl(post[:, 1:], prior[:, :-1]).sum(-1).mean()  # q_{t+1} vs p(d_t)
    for key, want in (("loss/rec", rec), ("loss/rew", rew), ("loss/term", term),
                      ("kl/dyn", kl), ("kl/rep", kl)):  # fmt: skip
        torch.testing.assert_close(m[key], want.detach(), rtol=1e-4, atol=1e-5, msg=key)
    torch.testing.assert_close(total.detach(), (rec + rew + term + 1.1 * kl).detach(),
                               rtol=1e-4, atol=1e-4)  # fmt: skip
    # free bits clip the batch-mean KL from below; the KL weights are 1.0 / 0.1
    wm.cfg.free_bits = 1e3
    total2, m2 = wm.loss(batch)
    assert m2["loss/dyn"] == 1e3 and m2["loss/rep"] == 1e3
    want = m2["loss/rec"] + m2["loss/rew"] + m2["loss/term"] + 1.1e3
    torch.testing.assert_close(total2.detach(), want, rtol=1e-5, atol=1e-3)


def test_update_steps_and_warms_up():
    torch.manual_seed(0)
    wm = WorldModel(debug_cfg(warmup_updates=4, lr=1e-3), num_actions=3)
    before = [p.detach().clone() for p in wm.parameters()]
    lrs = []
    for i in range(3):
        lrs.append(float(wm.scheduler.factor()) * wm.optimizer.param_groups[0]["lr"])
        metrics = wm.update(random_batch(2, 4, 3, seed=i))
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4])
    keys = {"loss/rec", "loss/rew", "loss/term", "loss/dyn", "loss/rep", "loss/total", "grad_norm"}
    assert keys <= set(metrics)
    for k, v in metrics.items():
        assert isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad, k
        assert torch.isfinite(v), k
    changed = [not torch.equal(b, p) for b, p in zip(before, wm.parameters(), strict=True)]
    assert all(changed)  # every parameter received a gradient and moved
    sd = {"wm": wm.state_dict(), "opt": wm.optimizer.state_dict(),
          "sched": wm.scheduler.state_dict()}  # fmt: skip
    wm2 = WorldModel(debug_cfg(warmup_updates=4, lr=1e-3), num_actions=3)
    wm2.load_state_dict(sd["wm"])
    wm2.optimizer.load_state_dict(sd["opt"])
    wm2.scheduler.load_state_dict(sd["sched"])
    assert float(wm2.scheduler.factor()) * wm2.optimizer.param_groups[0]["lr"] == \
        pytest.approx(1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_update():
    wm = WorldModel(debug_cfg(), num_actions=4).cuda()
    batch = {k: v.cuda() for k, v in random_batch(2, 8, 4).items()}
    metrics = wm.update(batch)
    assert all(torch.isfinite(v) for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in wm.parameters())  # autocast, fp32 master


@pytest.mark.slow
def test_learns_on_real_frames():
    """Random-policy Breakout frames: reconstruction loss halves, reward loss falls (~20 s)."""
    from drama.envs import make_env
    from drama.replay import ReplayBuffer, ReplayConfig

    torch.manual_seed(0)
    env = make_env("Breakout", seed=0)
    rng = np.random.default_rng(0)
    rb = ReplayBuffer(ReplayConfig(capacity=1000), seed=0)
    obs, _ = env.reset(seed=0)
    first = True
    for _ in range(1000):
        a = int(rng.integers(env.action_space.n))
        nxt, r, term, trunc, info = env.step(a)
        rb.add(obs, a, r, term or info["life_loss"], first)
        obs, first = nxt, False
        if term or trunc:
            (obs, _), first = env.reset(), True
    env.close()
    assert float(rb.reward[:1000].abs().sum()) > 0, "no reward in 1000 random Breakout steps"

    wm = WorldModel(debug_cfg(d_model=64, encoder_depth=4, head_hidden=64, stoch=32,
                              classes=32), env.action_space.n)  # fmt: skip
    hist = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convs: 2 threads on 2 shared cores run ~6x slower
    try:
        for _ in range(50):
            m = wm.update(rb.sample_world_model(4, 8))
            hist.append((float(m["loss/rec"]), float(m["loss/rew"])))
    finally:
        torch.set_num_threads(threads)
    rec, rew = np.array(hist).T
    assert rec[-5:].mean() <= 0.5 * rec[:3].mean(), rec
    assert rew[-5:].mean() <= 0.5 * rew[:3].mean(), rew
    assert int(rb.wm_count.sum()) == 50 * 4  # DFS counted every drawn start


def test_non_finite_update_is_skipped_exactly():
    """Official GradScaler semantics: a step with a non-finite loss/gradient changes nothing."""
    torch.manual_seed(0)
    wm = WorldModel(debug_cfg(), 3)
    wm.update(random_batch(2, 6, 3))  # optimizer state exists
    params = {k: v.clone() for k, v in wm.state_dict().items()}
    opt = {k: {n: (t.clone() if torch.is_tensor(t) else t) for n, t in st.items()}
           for k, st in wm.optimizer.state.items()}
    bad = random_batch(2, 6, 3, seed=1)
    bad["reward"][0, 2] = float("nan")
    m = wm.update(bad)
    assert not bool(m["finite"]) and not torch.isfinite(m["loss/total"])
    for k, v in wm.state_dict().items():  # BatchNorm statistics move in the forward pass
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(v, params[k]), k
    for k, st in wm.optimizer.state.items():
        for n, t in st.items():
            assert torch.equal(t, opt[k][n]) if torch.is_tensor(t) else t == opt[k][n], n
    m = wm.update(random_batch(2, 6, 3, seed=2))  # a finite step goes through again
    assert bool(m["finite"])
    assert any(not torch.equal(v, params[k]) for k, v in wm.state_dict().items())
