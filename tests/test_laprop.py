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
    """The device-side warm-up gives update k the rate lr * min(1, (k + 1) / warmup): the first
    step of a fresh LaProp moves each coordinate by exactly lambda_0 = lr / warmup (sign-like
    first step), and the factor follows LinearWarmupFactor at every update."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = LaProp([p], lr=4e-5)
    sched = linear_warmup(opt, 1000)
    factors = []
    for k in range(1002):
        factors.append(float(sched.factor()))
        p.grad = torch.ones(1, dtype=torch.float64)
        before = p.detach().clone()
        opt.step()
        sched.step()
        if k == 0:
            assert float((before - p).detach()) == pytest.approx(4e-5 / 1000, rel=1e-12)
    want = [LinearWarmupFactor(1000)(k) for k in range(1002)]
    assert factors == pytest.approx(want, rel=1e-15)
    assert factors[0] == pytest.approx(1 / 1000) and factors[499] == pytest.approx(0.5)
    assert factors[999] == 1.0 and factors[1001] == 1.0
    assert LinearWarmupFactor(0)(0) == 1.0
    # the warm-up state survives a checkpoint (the count is the optimiser's step counter)
    opt2 = LaProp([torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))], lr=4e-5)
    sched2 = linear_warmup(opt2, 1000)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert float(sched2.factor()) == 1.0
    with pytest.raises(ValueError, match="warm-up"):
        linear_warmup(LaProp([torch.nn.Parameter(torch.zeros(1))]), 10).load_state_dict(
            sched.state_dict())


class ReferenceLaProp(torch.optim.Optimizer):
    """The previous drama/optim.py LaProp (commit 08726a6), kept verbatim in logic: a Python
    loop over parameters with host-side float counters; the learning rate is read from the
    group (driven by a LambdaLR warm-up)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-20, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad, state = p.grad, self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["lr_norm"] = 0.0
                    state["sq_norm"] = 0.0
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                state["lr_norm"] = beta1 * state["lr_norm"] + (1.0 - beta1) * lr
                state["sq_norm"] = beta2 * state["sq_norm"] + (1.0 - beta2)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = (v / state["sq_norm"]).sqrt_().add_(eps)
                m.mul_(beta1).addcdiv_(grad, denom, value=(1.0 - beta1) * lr)
                step_size = lr / state["lr_norm"] if lr != 0.0 else 1.0
                p.add_(m, alpha=-step_size)
                if wd != 0.0:
                    p.mul_(1.0 - wd)


def _mlp(dtype):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 3)).to(dtype)


def _train(net, opt, sched, steps, data, finite_at=None):
    """``steps`` updates on a fixed regression; returns the parameters after each step."""
    out = []
    for k in range(steps):
        opt.zero_grad()
        (net(data[0]) - data[1]).square().mean().backward()
        if finite_at is None:
            opt.step()
        else:
            opt.step(finite=torch.tensor(finite_at(k)))
        sched.step()
        out.append([p.detach().clone() for p in net.parameters()])
    return out


# Not bit-identical: ``p.add_(m, alpha=-s)`` (one fused multiply-add in the vectorised kernel)
# and the foreach form's separate multiply and add round differently in the last bit; measured
# here: float64 within 4e-16 relative over 25 steps, float32 within a few ulp.
@pytest.mark.parametrize("dtype,tol", [(torch.float64, (1e-12, 1e-15)),
                                       (torch.float32, (2e-6, 1e-7))])
def test_foreach_laprop_equals_per_parameter_reference(dtype, tol):
    gen = torch.Generator().manual_seed(0)
    data = (torch.randn(32, 6, generator=gen).to(dtype),
            torch.randn(32, 3, generator=gen).to(dtype))
    net_a, net_b = _mlp(dtype), _mlp(dtype)
    opt_a = LaProp(net_a.parameters(), lr=3e-3, betas=(0.9, 0.99), eps=1e-20, weight_decay=1e-3)
    sched_a = linear_warmup(opt_a, 7)
    opt_b = ReferenceLaProp(net_b.parameters(), lr=3e-3, betas=(0.9, 0.99), eps=1e-20,
                            weight_decay=1e-3)
    sched_b = torch.optim.lr_scheduler.LambdaLR(opt_b, LinearWarmupFactor(7))
    got = _train(net_a, opt_a, sched_a, 25, data)
    want = _train(net_b, opt_b, sched_b, 25, data)
    for t, (ga, wb) in enumerate(zip(got, want, strict=True)):
        for a, b in zip(ga, wb, strict=True):
            torch.testing.assert_close(a, b, rtol=tol[0], atol=tol[1], msg=f"step {t + 1}")


@pytest.mark.parametrize("host_skip", [True, False], ids=["host-read", "device-where"])
def test_non_finite_step_is_skipped_exactly(host_skip, monkeypatch):
    """finite=False changes nothing (parameters, moments, counters, warm-up); the run then
    continues exactly like a run that never saw that step. Both forms: the flag read on the
    host (eager CPU) and the device-side where() (CUDA, compiled)."""
    monkeypatch.setattr(LaProp, "host_skip", host_skip)
    gen = torch.Generator().manual_seed(0)
    data = (torch.randn(32, 6, generator=gen), torch.randn(32, 3, generator=gen))
    net_a, net_b = _mlp(torch.float32), _mlp(torch.float32)
    opt_a, opt_b = LaProp(net_a.parameters(), lr=1e-2, weight_decay=1e-3), \
        LaProp(net_b.parameters(), lr=1e-2, weight_decay=1e-3)
    sched_a, sched_b = linear_warmup(opt_a, 5), linear_warmup(opt_b, 5)
    _train(net_a, opt_a, sched_a, 3, data)
    _train(net_b, opt_b, sched_b, 3, data)
    before = copy.deepcopy(opt_a.state_dict())
    params_before = [p.detach().clone() for p in net_a.parameters()]
    for p in net_a.parameters():  # a poisoned gradient, flagged non-finite
        p.grad = torch.full_like(p, float("nan"))
    opt_a.step(finite=torch.tensor(False))
    for p, q in zip(net_a.parameters(), params_before, strict=True):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0)
    after = opt_a.state_dict()
    for i, st in before["state"].items():
        for key, val in st.items():
            torch.testing.assert_close(after["state"][i][key], val, rtol=0, atol=0)
    # skipping, then continuing = never having seen the step
    got = _train(net_a, opt_a, sched_a, 4, data, finite_at=lambda k: True)
    want = _train(net_b, opt_b, sched_b, 4, data)
    for ga, wb in zip(got, want, strict=True):
        for a, b in zip(ga, wb, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_loads_state_of_the_previous_per_parameter_laprop():
    """An old checkpoint (host-side counters, LambdaLR-scaled lr with initial_lr) resumes the
    same trajectory as the old optimiser would have continued."""
    gen = torch.Generator().manual_seed(0)
    data = (torch.randn(32, 6, generator=gen).double(), torch.randn(32, 3, generator=gen).double())
    net_old = _mlp(torch.float64)
    opt_old = ReferenceLaProp(net_old.parameters(), lr=3e-3, weight_decay=1e-3)
    sched_old = torch.optim.lr_scheduler.LambdaLR(opt_old, LinearWarmupFactor(10))
    _train(net_old, opt_old, sched_old, 4, data)
    net_new = _mlp(torch.float64)
    net_new.load_state_dict(net_old.state_dict())
    opt_new = LaProp(net_new.parameters(), lr=3e-3, weight_decay=1e-3)
    sched_new = linear_warmup(opt_new, 10)
    opt_new.load_state_dict(copy.deepcopy(opt_old.state_dict()))
    sched_new.load_state_dict(copy.deepcopy(sched_old.state_dict()))
    assert opt_new.param_groups[0]["lr"] == 3e-3
    got = _train(net_new, opt_new, sched_new, 8, data)
    want = _train(net_old, opt_old, sched_old, 8, data)
    for ga, wb in zip(got, want, strict=True):
        for a, b in zip(ga, wb, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)  # last-bit rounding, as above


@pytest.mark.parametrize(
    "kwargs,word",
    [({"lr": -1.0}, "learning rate"), ({"eps": -1.0}, "eps"), ({"betas": (1.0, 0.9)}, "betas"),
     ({"weight_decay": 2.0}, "weight_decay")],
)  # fmt: skip
def test_bad_arguments_raise(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LaProp([torch.nn.Parameter(torch.zeros(1))], **kwargs)
