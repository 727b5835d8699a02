"""LaProp optimiser (Ziyin et al. 2020) and the linear learning-rate warm-up used by Drama.

Glossary (LaProp paper, Algorithm 1 -> code):
    g_t            the gradient ``p.grad``
    nu, mu         ``betas[1]``, ``betas[0]`` (second / first moment decay)
    n_t            ``exp_avg_sq``: n_t = nu n_{t-1} + (1 - nu) g_t^2
    c_n            ``sq_norm``: 1 - nu^t (bias correction of n_t)
    m_t            ``exp_avg``: m_t = mu m_{t-1} + (1 - mu) lambda_t g_t / (sqrt(n_t / c_n) + eps)
    c_m            ``lr_norm / lambda_t`` with lr_norm = mu lr_norm + (1 - mu) lambda_t, i.e. the
                   lr-weighted bias correction 1 - mu^t when lambda is constant
    theta_t        theta_t = theta_{t-1} - m_t / c_m, then decoupled decay theta_t *= (1 - wd)

The difference from Adam: the gradient is divided by sqrt(n_t) *before* it enters the momentum,
so momentum and adaptivity are decoupled. The learning rate sits inside the momentum (as in
the official LaProp and Drama code) so that a changing learning rate (warm-up) is bias-corrected
by the lr-weighted average ``lr_norm``; with a constant rate this equals the paper's rule.

Weight decay follows the official Drama code (``sub_models/laprop.py``): after the step,
theta <- theta - wd * theta, *not* scaled by the learning rate (unlike AdamW); kept on purpose
for fidelity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor


class LaProp(torch.optim.Optimizer):
    """LaProp: Adam with the adaptive normalisation applied before the momentum.

    Defaults are those of the official Drama code: betas (0.9, 0.999), eps 1e-20 (as configured
    for both the world model and the actor-critic); ``weight_decay`` is applied as
    ``p -= weight_decay * p`` after each step (official code, not multiplied by ``lr``).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        weight_decay: float = 0.0,
    ):
        if not lr >= 0.0:
            raise ValueError(f"LaProp: invalid learning rate {lr!r} (must be >= 0)")
        if not eps >= 0.0:
            raise ValueError(f"LaProp: invalid eps {eps!r} (must be >= 0)")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"LaProp: invalid betas {betas!r} (each must be in [0, 1))")
        if not 0.0 <= weight_decay < 1.0:
            raise ValueError(f"LaProp: invalid weight_decay {weight_decay!r} (must be in [0, 1))")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None,
             finite: Tensor | None = None) -> Tensor | None:
        """One update; with ``finite`` (0-d bool tensor) False nothing changes (a skipped step:
        parameters, moments and bias corrections stay as they were)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if finite is not None and not bool(finite):  # host sync; issue 13 removes it
            return loss
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("LaProp does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["lr_norm"] = 0.0  # lr-weighted first-moment bias correction
                    state["sq_norm"] = 0.0  # 1 - beta2^t
                m, v = state["exp_avg"], state["exp_avg_sq"]
                # Host-side scalars only (Python floats): no device synchronisation.
                state["step"] += 1
                state["lr_norm"] = beta1 * state["lr_norm"] + (1.0 - beta1) * lr
                state["sq_norm"] = beta2 * state["sq_norm"] + (1.0 - beta2)

                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)  # n_t
                denom = (v / state["sq_norm"]).sqrt_().add_(eps)  # sqrt(n_t / c_n) + eps
                m.mul_(beta1).addcdiv_(grad, denom, value=(1.0 - beta1) * lr)  # m_t
                step_size = lr / state["lr_norm"] if lr != 0.0 else 1.0  # 1 / c_m
                p.add_(m, alpha=-step_size)
                if wd != 0.0:
                    p.mul_(1.0 - wd)  # official: p -= wd * p (not scaled by lr)
        return loss


class LinearWarmupFactor:
    """LR multiplier min(1, (k + 1) / warmup_steps) at scheduler step k.

    Matches ``pytorch_warmup.LinearWarmup`` as used by the official code: the first update
    runs at lr / warmup_steps and update number ``warmup_steps`` (1-based) at the full rate.
    A callable object (not a lambda) so that ``LambdaLR.state_dict`` stores it.
    """

    def __init__(self, warmup_steps: int):
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
        self.warmup_steps = int(warmup_steps)

    def __call__(self, k: int) -> float:
        if self.warmup_steps == 0:
            return 1.0
        return min(1.0, (k + 1) / self.warmup_steps)


def linear_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Scheduler to ``.step()`` once after every ``optimizer.step()``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearWarmupFactor(warmup_steps))
