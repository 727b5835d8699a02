import torch

from drama.distributions import (
    TwoHot,
    categorical_kl,
    sample_index,
    straight_through_categorical,
    symexp,
    symlog,
    unimix_logits,
)


def test_symlog_symexp_inverse():
    x = torch.tensor([-1e4, -3.0, -0.5, 0.0, 0.5, 7.0, 1e4], dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x)


def test_twohot_encode_is_two_hot_and_decodes_back():
    th = TwoHot(255, -20.0, 20.0).double()
    y = torch.tensor([-300.0, -1.0, 0.0, 0.37, 5.0, 1234.5], dtype=torch.float64)
    target = th.encode(y)
    assert target.shape == (6, 255)
    torch.testing.assert_close(target.sum(-1), torch.ones(6, dtype=torch.float64))
    assert int((target > 0).sum(-1).max()) <= 2
    # Expected bin under the encoding == symlog(y) exactly (linear interpolation).
    torch.testing.assert_close((target * th.bins.double()).sum(-1), symlog(y))
    # Logits = log(target) decode to y.
    logits = torch.log(target.clamp_min(1e-300))
    torch.testing.assert_close(th.mean(logits).double(), y, rtol=1e-4, atol=1e-4)


def test_twohot_clips_to_range_and_loss_minimised_at_target():
    th = TwoHot(5, -2.0, 2.0)
    y = torch.tensor([1e6])  # symlog ~ 13.8 > 2: all weight on the top bin
    assert th.encode(y)[0, -1] == 1.0
    logits = torch.zeros(1, 5, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=1.0)
    for _ in range(200):
        opt.zero_grad()
        th.loss(logits, torch.tensor([0.5])).sum().backward()
        opt.step()
    torch.testing.assert_close(th.mean(logits.detach()), torch.tensor([0.5]), atol=1e-2, rtol=0)


def test_unimix_and_straight_through_sample():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([[20.0, -20.0, -20.0, -20.0]], requires_grad=True)
    mixed = unimix_logits(logits, 0.01)
    probs = mixed.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(1))
    assert float(probs.min()) >= 0.01 / 4 - 1e-6
    sample = straight_through_categorical(mixed, generator=g)
    assert sample.shape == (1, 4)
    torch.testing.assert_close(sample.detach().sum(-1), torch.ones(1))
    (sample * torch.arange(4.0)).sum().backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


def test_categorical_kl_matches_torch():
    p = torch.log_softmax(torch.randn(3, 32, 32), -1)
    q = torch.log_softmax(torch.randn(3, 32, 32), -1)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=p), torch.distributions.Categorical(logits=q)
    )
    torch.testing.assert_close(categorical_kl(p, q), ref)


def _chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    from scipy.stats import chisquare

    n = counts.sum().item()
    expected = probs.double() / probs.double().sum() * n
    return float(chisquare(counts.double().numpy(), expected.numpy()).pvalue)


def test_gumbel_max_sampler_keeps_the_distribution():
    """sample_index draws from softmax(logits): chi-square against the probabilities."""
    g = torch.Generator().manual_seed(123)
    probs = torch.tensor([[0.5, 0.25, 0.15, 0.07, 0.025, 0.005],
                          [0.005, 0.025, 0.07, 0.15, 0.25, 0.5]])  # two rows, each its own
    logits = probs.log()
    n = 100_000
    idx = sample_index(logits.expand(n, 2, 6), generator=g)  # (n, 2)
    assert idx.shape == (n, 2) and idx.dtype == torch.long
    for row in range(2):
        counts = torch.bincount(idx[:, row], minlength=6)
        assert _chi_square_p(counts, probs[row]) > 1e-3, (row, counts)
    # the same check has power: a sampler at temperature 1.1 is rejected
    wrong = sample_index(logits[0].expand(n, 6) / 1.1, generator=g)
    assert _chi_square_p(torch.bincount(wrong, minlength=6), probs[0]) < 1e-6
    # unnormalised logits and bf16 inputs give the same distribution; -inf is never drawn
    shifted = sample_index((logits[0] + 7.0).to(torch.bfloat16).expand(n, 6), generator=g)
    p_bf16 = torch.softmax((logits[0] + 7.0).to(torch.bfloat16).float(), -1)
    assert _chi_square_p(torch.bincount(shifted, minlength=6), p_bf16) > 1e-3
    masked = torch.tensor([0.0, float("-inf"), 0.0]).expand(10_000, 3)
    assert not (sample_index(masked, generator=g) == 1).any()


def test_samplers_match_torch_multinomial_in_distribution():
    """Latent (straight-through) and action samples vs torch.multinomial on the same probs."""
    g = torch.Generator().manual_seed(7)
    probs = unimix_logits(torch.randn(8) * 2, 0.01).exp()  # (8,) a unimix latent/policy
    n = 80_000
    ours = straight_through_categorical(probs.log().expand(n, 8), generator=g).argmax(-1)
    theirs = torch.multinomial(probs, n, replacement=True, generator=g)
    for counts in (torch.bincount(ours, minlength=8), torch.bincount(theirs, minlength=8)):
        assert _chi_square_p(counts, probs) > 1e-3, counts
    # reproducible: the same generator seed gives the same samples
    a = sample_index(probs.log().expand(100, 8), torch.Generator().manual_seed(1))
    b = sample_index(probs.log().expand(100, 8), torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_actor_act_samples_the_policy():
    from drama.agent import ActorCritic, ActorCriticConfig

    torch.manual_seed(0)
    ac = ActorCritic(ActorCriticConfig(), feat_dim=16, num_actions=5).eval()
    feat = torch.randn(1, 16).expand(60_000, 16)
    with torch.no_grad():
        probs = ac.policy_logits(feat[:1]).exp()[0]
    actions = ac.act(feat, generator=torch.Generator().manual_seed(3))
    assert _chi_square_p(torch.bincount(actions, minlength=5), probs) > 1e-3
    assert torch.equal(ac.act(feat[:4], greedy=True), probs.argmax().expand(4))
