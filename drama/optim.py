"""LaProp optimiser (Ziyin et al. 2020) and the linear learning-rate warm-up used by Drama.

Glossary (LaProp paper, Algorithm 1 -> code):
    g_t            the gradient ``p.grad``
    nu, mu         ``betas[1]``, ``betas[0]`` (second / first moment decay)
    n_t            ``exp_avg_sq``: n_t = nu n_{t-1} + (1 - nu) g_t^2
    c_n            ``sq_norm``: 1 - nu^t (bias correction of n_t)
    m_t            ``exp_avg``: m_t = mu m_{t-1} + (1 - mu) lambda_t g_t / (sqrt(n_t / c_n) + eps)
    c_m            ``lr_norm / lambda_t`` with lr_norm = mu lr_norm + (1 - mu) lambda_t, i.e. the
                   lr-weighted bias correction 1 - mu^t when lambda is constant
    theta_t        theta_t = theta_{t-1} - m_t / c_m, then decoupled decay theta_t -= wd theta_t

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
from typing import Any

import torch
from torch import Tensor


class LaProp(torch.optim.Optimizer):
    """LaProp: Adam with the adaptive normalisation applied before the momentum.

    Defaults are those of the official Drama code: betas (0.9, 0.999), eps 1e-20 (as configured
    for both the world model and the actor-critic); ``weight_decay`` is applied as
    ``p -= weight_decay * p`` after each step (official code, not multiplied by ``lr``).

    Capture-safe (CUDA graphs, ``torch.compile(fullgraph=True)``): the per-parameter counters
    ``step``, ``lr_norm`` (c_m numerator) and ``sq_norm`` (c_n) are float64 0-d tensors on the
    parameter's device, the update is a handful of ``torch._foreach_*`` calls per group (no
    Python loop doing host math per parameter), and the linear warm-up factor
    ``min(1, step / warmup_steps)`` (``step`` counted after the increment, i.e. update k, 0-based,
    runs at ``lr * min(1, (k + 1) / warmup_steps)``) is computed on the device from ``step``.
    float64 keeps the counters as exact as the previous host-side Python floats.

    ``step(finite=flag)``: with a 0-d bool tensor ``flag`` that is False, the step changes
    nothing (parameters, moments, counters, hence the warm-up), like a GradScaler-skipped step;
    decided on the device with ``torch.where`` (no host synchronisation); eager on the CPU,
    where reading the flag costs nothing, it is read and the step skipped or taken plainly
    (``host_skip``; False forces the device form, for tests).
    """

    host_skip = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
    ):
        if not (isinstance(lr, Tensor) or lr >= 0.0):
            raise ValueError(f"LaProp: invalid learning rate {lr!r} (must be >= 0)")
        if not eps >= 0.0:
            raise ValueError(f"LaProp: invalid eps {eps!r} (must be >= 0)")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"LaProp: invalid betas {betas!r} (each must be in [0, 1))")
        if not 0.0 <= weight_decay < 1.0:
            raise ValueError(f"LaProp: invalid weight_decay {weight_decay!r} (must be in [0, 1))")
        if not (isinstance(warmup_steps, int) and warmup_steps >= 0):
            raise ValueError(f"LaProp: invalid warmup_steps {warmup_steps!r} (must be an int >= 0)")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        warmup_steps=warmup_steps)
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        state = self.state[p]
        if len(state) == 0:
            zero = torch.zeros((), dtype=torch.float64, device=p.device)
            state["step"] = zero.clone()  # updates applied to p
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["lr_norm"] = zero.clone()  # lr-weighted first-moment bias correction
            state["sq_norm"] = zero.clone()  # 1 - beta2^t
        return state

    @torch.no_grad()
    def init_state(self) -> None:
        """Create the state of every parameter now (before tracing a compiled step)."""
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None,
             finite: Tensor | None = None) -> Tensor | None:
        """One update; with ``finite`` (0-d bool tensor) False nothing changes (a skipped step:
        parameters, moments and bias corrections stay as they were), decided on the device."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if finite is not None and self.host_skip and finite.device.type == "cpu" \
                and not torch.compiler.is_compiling():
            # eager on the CPU reading the flag is free (no device to wait for): skip or step
            # plainly instead of cloning every tensor and restoring it with where() (debug
            # preset's world model: 5.7 -> 4.0 ms per step); the same values either way
            if not bool(finite):
                return loss
            finite = None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("LaProp does not support sparse gradients")
            states = [self._init_state(p) for p in params]
            self._update_group(group, params, states, finite)
        return loss

    @staticmethod
    def _update_group(group: dict, params: list[Tensor], states: list[dict],
                      finite: Tensor | None) -> None:
        beta1, beta2 = group["betas"]
        eps, wd, warm = group["eps"], group["weight_decay"], group["warmup_steps"]
        grads = [p.grad for p in params]
        ms = [s["exp_avg"] for s in states]
        vs = [s["exp_avg_sq"] for s in states]
        steps = [s["step"] for s in states]
        lr_norms = [s["lr_norm"] for s in states]
        sq_norms = [s["sq_norm"] for s in states]
        if finite is not None:
            # keep the old values; a NaN/Inf gradient is replaced by 0 so that every new value
            # is finite and the where() below restores the old one exactly
            saved = torch._foreach_clone(params + ms + vs + steps + lr_norms + sq_norms)
            grads = [torch.where(finite, g, torch.zeros((), dtype=g.dtype, device=g.device))
                     for g in grads]

        torch._foreach_add_(steps, 1.0)  # t
        lr = group["lr"]
        if warm > 0:  # lambda_t = lr * min(1, t / warmup), t counted from 1
            lrs = torch._foreach_div(steps, float(warm))
            torch._foreach_clamp_max_(lrs, 1.0)
            torch._foreach_mul_(lrs, lr)
        else:
            lrs = [torch.as_tensor(lr, dtype=torch.float64, device=s.device) for s in steps]
        torch._foreach_mul_(lr_norms, beta1)  # lr_norm = mu lr_norm + (1 - mu) lambda_t
        torch._foreach_add_(lr_norms, torch._foreach_mul(lrs, 1.0 - beta1))
        torch._foreach_mul_(sq_norms, beta2)  # c_n = nu c_n + (1 - nu) = 1 - nu^t
        torch._foreach_add_(sq_norms, 1.0 - beta2)

        torch._foreach_mul_(vs, beta2)  # n_t = nu n + (1 - nu) g^2
        torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)
        denom = torch._foreach_div(vs, sq_norms)  # sqrt(n_t / c_n) + eps
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, eps)
        upd = torch._foreach_div(grads, denom)  # m_t = mu m + (1 - mu) lambda_t g / denom
        torch._foreach_mul_(upd, torch._foreach_mul(lrs, 1.0 - beta1))
        torch._foreach_mul_(ms, beta1)
        torch._foreach_add_(ms, upd)
        # 1 / c_m = lambda_t / lr_norm (1 where lambda_t = 0, as before)
        ratio = torch._foreach_div(lrs, lr_norms)
        step_size = [torch.where(lr_t != 0, -r, -1.0) for lr_t, r in zip(lrs, ratio, strict=True)]
        torch._foreach_add_(params, torch._foreach_mul(ms, step_size))  # theta -= m / c_m
        if wd != 0.0:
            # official: p.add_(p, alpha=-wd), not scaled by lr; the same op (p * (1 - wd) would
            # round 1 - 1e-4 to fp32, an effective decay of 1.000166e-4)
            torch._foreach_add_(params, params, alpha=-wd)

        if finite is not None:
            current = params + ms + vs + steps + lr_norms + sq_norms
            torch._foreach_copy_(current, [torch.where(finite, c, old) for c, old in
                                           zip(current, saved, strict=True)])

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict, also one written by the earlier per-parameter LaProp (host-side
        counters as Python numbers and a LambdaLR-scaled ``lr`` with ``initial_lr``)."""
        warm = [g["warmup_steps"] for g in self.param_groups]
        super().load_state_dict(state_dict)
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for sid, p in zip(saved_ids, params, strict=True):
            saved = state_dict["state"].get(sid)
            if saved is None:
                continue
            for key in ("step", "lr_norm", "sq_norm"):  # float64 on the parameter's device
                val = saved[key]
                val = val.detach() if isinstance(val, Tensor) else torch.tensor(
                    float(val), dtype=torch.float64)  # old checkpoints: Python numbers
                self.state[p][key] = val.to(dtype=torch.float64, device=p.device).clone()
        for g, w in zip(self.param_groups, warm, strict=True):
            if "initial_lr" in g:  # old checkpoint: lr was the warm-up-scaled rate
                g["lr"] = g.pop("initial_lr")
            g.setdefault("warmup_steps", w)


class LinearWarmup:
    """The linear warm-up of a LaProp, as a scheduler-like handle for the training code.

    The factor min(1, (k + 1) / warmup_steps) for update k (0-based) is computed inside
    ``LaProp.step`` on the device from the optimiser's own step counter (checkpointed with the
    optimiser), so ``step()`` has nothing to do; it matches ``pytorch_warmup.LinearWarmup`` as
    used by the official code: the first update runs at lr / warmup_steps and update number
    ``warmup_steps`` (1-based) at the full rate.
    """

    def __init__(self, optimizer: LaProp, warmup_steps: int):
        if not isinstance(optimizer, LaProp):
            raise TypeError(f"linear_warmup needs a LaProp, got {type(optimizer).__name__}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
        self.optimizer, self.warmup_steps = optimizer, int(warmup_steps)
        for g in optimizer.param_groups:
            g["warmup_steps"] = self.warmup_steps

    def step(self) -> None:
        """Nothing to do: the warm-up advances with the optimiser's device step counter."""

    def factor(self) -> Tensor:
        """Device tensor: the factor of the next update (from the first parameter's counter)."""
        p = self.optimizer.param_groups[0]["params"][0]
        st = self.optimizer.state.get(p, {})
        k = st["step"] if "step" in st else torch.zeros((), dtype=torch.float64, device=p.device)
        if self.warmup_steps == 0:
            return torch.ones_like(k)
        return ((k + 1) / self.warmup_steps).clamp(max=1.0)

    def state_dict(self) -> dict[str, Any]:
        return {"warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Also accepts the LambdaLR state of earlier checkpoints (its count is the optimiser's
        step counter, which the optimiser's own state restores)."""
        saved = state.get("warmup_steps")
        if saved is None and state.get("lr_lambdas"):
            saved = (state["lr_lambdas"][0] or {}).get("warmup_steps")
        if saved is not None and int(saved) != self.warmup_steps:
            raise ValueError(f"warm-up state is for {saved} warm-up steps, this run has "
                             f"{self.warmup_steps}")


class LinearWarmupFactor:
    """LR multiplier min(1, (k + 1) / warmup_steps) at update k, as a host-side function (the
    definition the device-side warm-up in ``LaProp`` implements; kept for tests and for
    LambdaLR states of old checkpoints, which pickled it)."""

    def __init__(self, warmup_steps: int):
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
        self.warmup_steps = int(warmup_steps)

    def __call__(self, k: int) -> float:
        if self.warmup_steps == 0:
            return 1.0
        return min(1.0, (k + 1) / self.warmup_steps)


def linear_warmup(optimizer: LaProp, warmup_steps: int) -> LinearWarmup:
    """Give ``optimizer`` a linear warm-up over ``warmup_steps`` updates (see LinearWarmup)."""
    return LinearWarmup(optimizer, warmup_steps)
