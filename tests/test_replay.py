"""Replay buffer and Dynamic Frequency-based Sampling (formulas, sampling, boundaries, state)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import stats

from drama.replay import ReplayBuffer, ReplayConfig


def frame(v: int) -> np.ndarray:
    return np.full((4, 4, 3), v % 256, dtype=np.uint8)


def filled(n: int, *, capacity=None, firsts=(0,), seed: int = 0, **cfg) -> ReplayBuffer:
    cfg.setdefault("img_count_scale", 64.0)  # derived by resolve_config in a run
    rb = ReplayBuffer(ReplayConfig(capacity=capacity or n, **cfg), obs_shape=(4, 4, 3), seed=seed)
    for i in range(n):
        rb.add(frame(i), action=i % 3, reward=float(i), termination=(i + 1) in firsts,
               is_first=i in firsts)  # fmt: skip
    return rb


def test_world_model_probabilities_equal_formula():
    rb = filled(20)
    c = np.array([0, 3, 1, 0, 7, 2, 2, 0, 5, 1, 0, 0, 4, 9, 1, 0, 2, 0, 0, 6], dtype=np.int32)
    rb.wm_count[:20] = torch.from_numpy(c)
    L = 4
    p = rb.probabilities("world_model", L).numpy()  # starts 0..16
    w = np.exp(-c[: 20 - L + 1] / 10.0)
    np.testing.assert_allclose(p, w / w.sum(), rtol=1e-6)


def test_imagination_probabilities_equal_formula():
    rb = filled(12, img_count_scale=4.0, alpha=0.5, beta=2.0, img_tau=3.0)
    c = np.array([0, 3, 1, 0, 7, 2, 2, 0, 5, 1, 0, 4], dtype=np.float64)
    i = np.array([0, 8, 0, 40, 4, 12, 2, 0, 1, 0, 16, 3], dtype=np.float64)
    rb.wm_count[:12] = torch.tensor(c, dtype=torch.int32)
    rb.img_count[:12] = torch.tensor(i, dtype=torch.int32)
    L = 2
    it = i / 4.0  # I~ = I / scale
    s = c - 0.5 * it - 2.0 * np.maximum(0.0, c - it)
    s = s[: 12 - L + 1] / 3.0
    want = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    np.testing.assert_allclose(rb.probabilities("imagination", L).numpy(), want, rtol=1e-5)


def test_paper_defaults():
    cfg = ReplayConfig()
    assert (cfg.capacity, cfg.sampling, cfg.wm_tau, cfg.img_tau) == (100_000, "dfs", 10.0, 10.0)
    assert (cfg.alpha, cfg.beta, cfg.img_count_scale, cfg.warmup) == (1.0, 1.0, None, 1032)
    assert cfg.cross_episodes is True  # official: windows may span a reset


def test_draws_without_replacement_and_counters():
    rb = filled(40)
    for _ in range(20):
        before_wm, before_img = rb.wm_count.clone(), rb.img_count.clone()
        starts = rb.draw_starts("world_model", 16, 8)
        assert starts.unique().numel() == 16
        assert int(starts.min()) >= 0 and int(starts.max()) <= 40 - 8
        diff = (rb.wm_count - before_wm).numpy()
        assert diff[starts.numpy()].tolist() == [1] * 16 and diff.sum() == 16
        assert torch.equal(rb.img_count, before_img)
    starts = rb.draw_starts("imagination", 37, 4)  # all valid starts 0..36 exactly once
    assert sorted(starts.tolist()) == list(range(37))
    assert rb.img_count[:37].min() == 1 and rb.img_count[37:].sum() == 0
    # more draws than valid starts (only possible right after warm-up): extra passes
    before = rb.wm_count.clone()
    starts = rb.draw_starts("world_model", 40, 8)  # 33 starts exist
    assert starts.numel() == 40 and starts.unique().numel() == 33
    torch.testing.assert_close((rb.wm_count - before).sum(), torch.tensor(40))
    with pytest.raises(ValueError, match="no valid start"):
        filled(10, firsts=(0, 3, 6, 9), cross_episodes=False).draw_starts("world_model", 1, 5)
    with pytest.raises(ValueError, match="length 41"):
        rb.draw_starts("world_model", 1, 41)


def test_dfs_sampling_follows_probabilities():
    """Single draws (counters restored) follow p_i: chi-square with a fixed seed."""
    rb = filled(30, seed=1)
    rb.wm_count[:30] = torch.arange(30, dtype=torch.int32) % 7 * 4  # strongly non-uniform
    saved = rb.wm_count.clone()
    p = rb.probabilities("world_model", 5).numpy()
    hits = np.zeros_like(p)
    n = 6000
    for _ in range(n):
        hits[int(rb.draw_starts("world_model", 1, 5))] += 1
        rb.wm_count.copy_(saved)
    assert stats.chisquare(hits, p * n).pvalue > 1e-3
    # and DFS prefers rarely sampled starts: the never-sampled ones are drawn most
    assert hits[saved[:26].numpy() == 0].mean() > 3 * hits[saved[:26].numpy() == 24].mean()


def test_uniform_mode_is_uniform():
    rb = filled(60, sampling="uniform", seed=3)
    rb.wm_count[:30] = 50  # counters must not matter in uniform mode
    p = rb.probabilities("world_model", 11).numpy()
    np.testing.assert_allclose(p, np.full(50, 1 / 50), rtol=1e-6)
    hits = np.zeros(50)
    draws = 3000
    for _ in range(draws):
        hits[rb.draw_starts("world_model", 5, 11).numpy()] += 1
    # inclusion probability k/m = 5/50 for every start
    assert stats.chisquare(hits, np.full(50, hits.sum() / 50)).pvalue > 1e-3
    assert abs(hits.mean() / draws - 0.1) < 1e-9


def test_windows_never_cross_a_reset_with_the_switch():
    firsts = (0, 10, 17, 30)
    rb = filled(36, firsts=firsts, cross_episodes=False)
    L = 5
    p = rb.probabilities("world_model", L).numpy()
    invalid = {6, 7, 8, 9, 13, 14, 15, 16, 26, 27, 28, 29}  # windows with a reset inside
    assert {int(i) for i in np.flatnonzero(p == 0)} == invalid
    assert rb.num_valid_starts(L) == 32 - len(invalid)
    for _ in range(30):
        batch = rb.sample_world_model(4, L)
        assert not batch["is_first"][:, 1:].any()
        # the step before a reset ends its episode: termination 1.0 there
    assert batch["termination"].dtype == torch.float32
    # a window may end exactly at the terminal step (start 5: steps 5..9, termination at 9)
    assert p[5] > 0 and rb.termination[9] == 1.0 and rb.is_first[10]


def test_windows_span_resets_by_default():
    """Official replay_buffer.py: any start <= N - L may be drawn, windows may span a reset."""
    firsts = (0, 10, 17, 30)
    rb = filled(36, firsts=firsts)
    assert rb.cfg.cross_episodes is True
    L = 5
    p = rb.probabilities("world_model", L)
    assert (p > 0).all() and rb.num_valid_starts(L) == 32
    torch.testing.assert_close(p, torch.full((32,), 1 / 32))  # fresh counters: uniform
    # window 8..12 spans the reset at 10: drawn as is, reset and terminal flag inside
    spans = 0
    for _ in range(40):
        batch = rb.sample_world_model(8, L)
        inside = batch["is_first"][:, 1:].any(1)
        spans += int(inside.sum())
        for row in torch.nonzero(inside).flatten().tolist():
            k = int(torch.nonzero(batch["is_first"][row, 1:]).flatten()[0]) + 1
            assert batch["termination"][row, k - 1] == 1.0  # the old episode's last step
    assert spans > 0


def test_host_valid_count_matches_device_mask():
    gen = np.random.default_rng(0)
    for trial in range(20):
        cap, n_add = int(gen.integers(5, 40)), int(gen.integers(5, 80))
        firsts = set(np.flatnonzero(gen.random(n_add) < 0.15).tolist())
        rb = ReplayBuffer(ReplayConfig(capacity=cap, cross_episodes=False, img_count_scale=64.0),
                          obs_shape=(4, 4, 3))
        for i in range(n_add):
            rb.add(frame(i), 0, 0.0, False, i in firsts)
        for L in range(1, len(rb) + 1):
            assert rb.num_valid_starts(L) == int(rb.window_starts(L).sum()), (trial, L)


def test_ring_buffer_keeps_time_order():
    rb = filled(25, capacity=10)  # slots overwritten: holds steps 15..24
    assert len(rb) == 10
    for _ in range(10):
        obs = rb.sample_world_model(3, 6)["obs"][..., 0, 0, 0].long()  # (3, 6) step ids
        assert ((obs[:, 1:] - obs[:, :-1]) == 1).all() and int(obs.min()) >= 15
    rb.add(frame(99), 0, 0.0, False, False)  # overwrites step 15's slot: its counters reset
    assert rb.wm_count[5] == 0 and rb.img_count[5] == 0


def test_sample_dict_shapes_and_types():
    rb = filled(50, firsts=(0,))
    for batch, L in ((rb.sample_world_model(4, 16), 16), (rb.sample_imagination(8, 8), 8)):
        B = batch["obs"].shape[0]
        assert batch["obs"].shape == (B, L, 4, 4, 3) and batch["obs"].dtype == torch.uint8
        assert batch["action"].dtype == torch.long and batch["action"].shape == (B, L)
        assert batch["reward"].dtype == torch.float32 and batch["is_first"].dtype == torch.bool
        steps = batch["obs"][..., 0, 0, 0].long()
        assert torch.equal(batch["reward"], steps.float())
        assert torch.equal(batch["action"], steps % 3)


def test_state_dict_roundtrip_resumes_exactly():
    rb = filled(30, capacity=20, firsts=(0, 12))
    rb.sample_world_model(4, 5)
    rb.sample_imagination(6, 3)
    sd = copy.deepcopy(rb.state_dict())
    rb2 = ReplayBuffer(ReplayConfig(capacity=20, img_count_scale=64.0), obs_shape=(4, 4, 3),
                       seed=123)
    rb2.load_state_dict(sd)
    for _ in range(3):
        a, b = rb.sample_world_model(4, 5), rb2.sample_world_model(4, 5)
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert torch.equal(rb.wm_count, rb2.wm_count) and torch.equal(rb.img_count, rb2.img_count)
    rb.add(frame(7), 1, 0.0, False, False)
    rb2.add(frame(7), 1, 0.0, False, False)
    assert torch.equal(rb.obs, rb2.obs) and len(rb) == len(rb2)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(ReplayConfig(capacity=21, img_count_scale=64.0),
                     obs_shape=(4, 4, 3)).load_state_dict(sd)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="bogus"):
        ReplayConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="sampling"):
        ReplayConfig(sampling="prioritised")
    rb = ReplayBuffer(ReplayConfig(capacity=4), obs_shape=(4, 4, 3))
    with pytest.raises(ValueError, match="uint8"):
        rb.add(np.zeros((4, 4, 3), np.float32), 0, 0.0, False, True)
    with pytest.raises(ValueError, match="shape"):
        rb.add(np.zeros((4, 4), np.uint8), 0, 0.0, False, True)
    with pytest.raises(ValueError, match="kind"):
        filled(5).start_logits("actor", 2)
    assert ReplayConfig.from_dict({"sampling": "uniform"}).sampling == "uniform"
