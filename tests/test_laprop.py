"""LaProp against its published update rule (Ziyin et al. 2020, Alg. 1), step by step.

The references below are naive float64 numpy loops written from the paper's equations, not
from drama/optim.py: the constant-lr reference keeps the learning rate outside the momentum
(the paper's form), the varying-lr reference re-sums the whole gradient history each step.
"""

from __future__ import annotations

import copy
import numpy as np
import pytest
import torch

from drama.optim import LaProp, LinearWarmupFactor, linear_warmup

RNG = np.random.default_rng(0)
DIM = 5
A = RNG.normal(size=(DIM, DIM))
A = A @ A.T + np.eye(DIM)  # SPD quadratic: f(x) = 0.5 x^T A x - b^T x
B = RNG.normal(size=DIM)
X0 = RNG.normal(size=DIM)


def grad_np(x: np.ndarray) -> np.ndarray:
    return A @ x - B


def run_torch(lrs, betas, eps, wd) -> list[np.ndarray]:
    x = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
    opt = LaProp([x], lr=lrs[0], betas=betas, eps=eps, weight_decay=wd)
    a, b = torch.tensor(A), torch.tensor(B)
    out = []
    for lr in lrs:
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        opt.step()
        out.append(x.detach().numpy().copy())
    return out


def reference_paper(lr, steps, betas, eps) -> list[np.ndarray]:
    """Alg. 1: n_t = nu n + (1-nu) g^2; m_t = mu m + (1-mu) g / (sqrt(n_t / (1-nu^t)) + eps);
    theta -= lr m_t / (1 - mu^t)."""
    mu, nu = betas
    x, m, n = X0.copy(), np.zeros(DIM), np.zeros(DIM)
    out = []
    for t in range(1, steps + 1):
        g = grad_np(x)
        n = nu * n + (1 - nu) * g * g
        m = mu * m + (1 - mu) * g / (np.sqrt(n / (1 - nu**t)) + eps)
        x = x - lr * m / (1 - mu**t)
        out.append(x.copy())
    return out


def reference_varying_lr(lrs, betas, eps, wd) -> list[np.ndarray]:
    """Official-code form with a changing lr: the momentum of lr-weighted normalised gradients,
    bias-corrected by the same weights; then theta -= wd * theta. Naive sums over history."""
    mu, nu = betas
    x = X0.copy()
    normed, out = [], []  # normalised gradients g_s / (sqrt(n_s / c_n) + eps)
    grads = []
    for t, lr in enumerate(lrs, start=1):
        g = grad_np(x)
        grads.append(g)
        n = sum((1 - nu) * nu ** (t - s) * grads[s - 1] ** 2 for s in range(1, t + 1))
        normed.append(g / (np.sqrt(n / (1 - nu**t)) + eps))
        weights = [(1 - mu) * mu ** (t - s) * lrs[s - 1] for s in range(1, t + 1)]
        m = sum(w * h for w, h in zip(weights, normed, strict=True))
        x = x - lr * m / sum(weights)
        x = x - wd * x
        out.append(x.copy())
    return out


@pytest.mark.parametrize("betas,eps", [((0.9, 0.999), 1e-20), ((0.8, 0.95), 1e-3)])
def test_matches_published_rule_constant_lr(betas, eps):
    lr, steps = 0.05, 40
    got = run_torch([lr] * steps, betas, eps, wd=0.0)
    want = reference_paper(lr, steps, betas, eps)
    for t, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"step {t + 1}")


def test_matches_reference_with_warmup_and_weight_decay():
    lrs = [0.05 * min(1.0, (k + 1) / 10) for k in range(30)]  # linear warm-up over 10 steps
    got = run_torch(lrs, (0.9, 0.99), 1e-20, wd=1e-2)
    want = reference_varying_lr(lrs, (0.9, 0.99), 1e-20, wd=1e-2)
    for t, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"step {t + 1}")


def test_first_step_is_sign_like_and_descends():
    # step 1: m/(1-mu) = g/(|g|+eps), so every coordinate moves by lr against its gradient sign
    got = run_torch([0.01], (0.9, 0.999), 1e-20, wd=0.0)[0]
    np.testing.assert_allclose(got, X0 - 0.01 * np.sign(grad_np(X0)), rtol=1e-12)
    xs = run_torch([0.02] * 300, (0.9, 0.999), 1e-20, wd=0.0)
    f = lambda x: 0.5 * x @ A @ x - B @ x  # noqa: E731
    assert f(xs[-1]) < f(X0) - 0.5 * (f(X0) - f(np.linalg.solve(A, B)))


def test_state_dict_roundtrip_continues_identically():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = LaProp(net.parameters(), lr=1e-2, weight_decay=1e-4)
    data = torch.randn(8, 3)
    for _ in range(3):
        opt.zero_grad()
        net(data).square().sum().backward()
        opt.step()
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(net.state_dict())
    opt2 = LaProp(net2.parameters(), lr=1e-2, weight_decay=1e-4)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as through torch.save / load
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(data).square().sum().backward()
        o.step()
    for p, q in zip(net.parameters(), net2.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_linear_warmup_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = LaProp([p], lr=4e-5)
    sched = linear_warmup(opt, 1000)
    lrs = []
    for _ in range(1002):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(1)
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(4e-5 / 1000)  # first update at lr / warmup
    assert lrs[499] == pytest.approx(4e-5 * 500 / 1000)
    assert lrs[999] == pytest.approx(4e-5) and lrs[1001] == pytest.approx(4e-5)
    assert LinearWarmupFactor(0)(0) == 1.0
    # the scheduler's state survives a checkpoint
    sched2 = linear_warmup(LaProp([torch.nn.Parameter(torch.zeros(1))], lr=4e-5), 1000)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_epoch == sched.last_epoch


@pytest.mark.parametrize(
    "kwargs,word",
    [({"lr": -1.0}, "learning rate"), ({"eps": -1.0}, "eps"), ({"betas": (1.0, 0.9)}, "betas"),
     ({"weight_decay": 2.0}, "weight_decay")],
)  # fmt: skip
def test_bad_arguments_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LaProp([torch.nn.Parameter(torch.zeros(1))], **kwargs)
