import torch

from drama.distributions import (
    TwoHot,
    categorical_kl,
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
