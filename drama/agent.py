"""The Drama actor-critic, trained on imagined trajectories (DreamerV3 / STORM style).

Glossary (code name -> paper / DreamerV3 symbol):
    feat      s_t = concat(z_t, h_t): the 1024-d latent sample and the 512-d sequence output
              that precedes it (h_t = d_{t-1}); the actor and critic input (1536-d).
    reward    r_t (see ``return_form`` below for which step it belongs to).
    cont      c_t = 1 - terminal_t (terminal: termination logit > 0).
    value     v(s_t): critic mean (symexp of the two-hot expectation).
    ret       the lambda-return, in one of two forms (``ActorCriticConfig.return_form``):
              official  (official ``agents.py`` ``calc_lambda_return``; the default):
                  G_t = r_t + gamma c_t (1 - lambda) v(s_t) + gamma c_t lambda G_{t+1},
                  G_H = v(s_H), with r_t, c_t from the heads on h_t, i.e. the reward and
                  termination of the transition *into* s_t (before action a_t);
              dreamerv3 (our correction, variant ``corrected``):
                  G_t = r_t + gamma c_t ((1 - lambda) v(s_{t+1}) + lambda G_{t+1}),
                  G_H = v(s_H), with r_t, c_t from the heads on d_t = h_{t+1}, i.e. the
                  consequences of a_t (DreamerV3 / STORM).
    scale     S = EMA_0.99(Per(G, 95) - Per(G, 5)); advantages are divided by max(1, S).

Time alignment (see drama/imagination.py): a trajectory holds H+1 states s_0..s_H, H actions
and H rewards/continuations, indexed as the chosen ``return_form`` defines them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drama.distributions import TwoHot, sample_index
from drama.optim import LaProp, linear_warmup
from drama.model_config import ActorCriticConfig


def _layer(in_dim: int, out_dim: int, std: float) -> nn.Linear:
    """Linear layer with orthogonal weights of gain ``std`` and zero bias (official layer_init)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int, out_std: float) -> nn.Sequential:
    """``layers`` x [Linear + RMSNorm + SiLU] then a Linear output layer of gain ``out_std``."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [_layer(in_dim if i == 0 else hidden, hidden, math.sqrt(2.0)),
                 nn.RMSNorm(hidden, eps=1e-5), nn.SiLU()]  # mamba-ssm RMSNorm's default eps
    mods.append(_layer(hidden if layers else in_dim, out_dim, out_std))
    return nn.Sequential(*mods)


class RunningNorm(nn.Module):
    """Running mean/variance normalisation with clipping (official VecNormalize).

    Statistics live in buffers (checkpointed) and are updated with ``update`` only, batch-wise
    with the parallel-variance formula; no host synchronisation.
    """

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.clip, self.eps = clip, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()  # (N, D)
        n = x.shape[0]
        b_mean, b_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = b_mean - self.mean
        m2 = self.var * self.count + b_var * n + delta.square() * self.count * n / total
        # a non-finite batch leaves the statistics as they were (no host sync), so a skipped
        # non-finite update (drama/train.py) does not poison every later forward pass
        ok = torch.isfinite(b_mean).all() & torch.isfinite(b_var).all()
        self.mean.copy_(torch.where(ok, self.mean + delta * n / total, self.mean))
        self.var.copy_(torch.where(ok, m2 / total, self.var))
        self.count.copy_(torch.where(ok, total, self.count))

    def forward(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + self.eps)).clamp(-self.clip, self.clip)


class ReturnNormalizer(nn.Module):
    """S = EMA of the 95th minus the 5th percentile of lambda-returns; returns max(1, S).

    Percentiles follow the official code: the int(p*N)-th smallest value (kthvalue). The EMAs
    start at 0 without bias correction, as in the official EMAScalar.
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95):
        super().__init__()
        self.decay, self.p_low, self.p_high = decay, low, high
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @staticmethod
    def percentile(x: Tensor, p: float) -> Tensor:
        flat = x.reshape(-1)
        k = min(max(int(p * flat.numel()), 1), flat.numel())
        return torch.kthvalue(flat, k).values

    @torch.no_grad()
    def update(self, ret: Tensor) -> Tensor:
        ok = torch.isfinite(ret).all()  # a non-finite batch leaves the EMAs unchanged
        low = self.low.lerp(self.percentile(ret.float(), self.p_low), 1.0 - self.decay)
        high = self.high.lerp(self.percentile(ret.float(), self.p_high), 1.0 - self.decay)
        self.low.copy_(torch.where(ok, low, self.low))
        self.high.copy_(torch.where(ok, high, self.high))
        return self.scale()

    def scale(self) -> Tensor:
        return torch.clamp(self.high - self.low, min=1.0)


def lambda_return(reward: Tensor, cont: Tensor, value: Tensor, gamma: float, lam: float,
                  form: str = "official") -> Tensor:
    """The lambda-return (B, H) of ``reward``/``cont`` (B, H) and ``value`` (B, H+1) = v(s_t).

    ``form="official"`` (official ``calc_lambda_return``):
        G_t = r_t + gamma c_t (1 - lam) v_t + gamma c_t lam G_{t+1},      G_H = v_H;
    ``form="dreamerv3"``:
        G_t = r_t + gamma c_t ((1 - lam) v_{t+1} + lam G_{t+1}),           G_H = v_H.
    Which step r_t and c_t belong to is the caller's (drama/imagination.py).
    """
    assert reward.ndim == 2 and reward.shape == cont.shape, (reward.shape, cont.shape)
    assert value.shape == (reward.shape[0], reward.shape[1] + 1), (value.shape, reward.shape)
    if form not in ("official", "dreamerv3"):
        raise ValueError(f"unknown lambda-return form {form!r}")
    boot = value[:, :-1] if form == "official" else value[:, 1:]  # (B, H)
    out = []
    last = value[:, -1]
    for t in reversed(range(reward.shape[1])):
        last = reward[:, t] + gamma * cont[:, t] * ((1.0 - lam) * boot[:, t] + lam * last)
        out.append(last)
    return torch.stack(out[::-1], dim=1)  # (B, H)


class ActorCritic(nn.Module):
    """Actor, critic, slow critic, return normaliser and their LaProp optimiser."""

    def __init__(self, cfg: ActorCriticConfig, feat_dim: int, num_actions: int):
        super().__init__()
        self.cfg, self.feat_dim, self.num_actions = cfg, feat_dim, num_actions
        self.input_norm = RunningNorm(feat_dim, clip=cfg.input_norm_clip)
        self.actor = mlp(feat_dim, cfg.actor_hidden, cfg.layers, num_actions, 0.001)
        self.critic = mlp(feat_dim, cfg.critic_hidden, cfg.layers, cfg.value_bins, 0.001)
        self.slow_critic = mlp(feat_dim, cfg.critic_hidden, cfg.layers, cfg.value_bins, 0.001)
        self.slow_critic.load_state_dict(self.critic.state_dict())
        self.slow_critic.requires_grad_(False)
        self.return_norm = ReturnNormalizer(cfg.return_norm_decay, cfg.return_norm_low,
                                            cfg.return_norm_high)
        self.twohot = TwoHot(cfg.value_bins, cfg.value_low, cfg.value_high)
        params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.optimizer = LaProp(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                weight_decay=cfg.weight_decay)
        # Linear warm-up: update k runs at lr * min(1, (k + 1) / warmup_updates).
        self.scheduler = linear_warmup(self.optimizer, cfg.warmup_updates)

    # -- acting ---------------------------------------------------------------------------
    def policy_logits(self, feat: Tensor) -> Tensor:
        """Log-probabilities (..., A) of the policy (uniform-mixed if ``unimix`` > 0)."""
        logits = self.actor(self.input_norm(feat))
        if self.cfg.unimix > 0:
            mix = self.cfg.unimix
            return torch.log((1 - mix) * F.softmax(logits.float(), -1) + mix / self.num_actions)
        return F.log_softmax(logits.float(), -1)

    @torch.no_grad()
    def act(self, feat: Tensor, greedy: bool = False,
            generator: torch.Generator | None = None) -> Tensor:
        """Actions (B,) long for features (B, F)."""
        assert feat.ndim == 2 and feat.shape[-1] == self.feat_dim, feat.shape
        logp = self.policy_logits(feat)  # (B, A)
        if greedy:
            return logp.argmax(-1)
        return sample_index(logp, generator)

    def value(self, feat: Tensor) -> Tensor:
        return self.twohot.mean(self.critic(feat))

    # -- learning -------------------------------------------------------------------------
    def loss(self, traj: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Actor-critic loss on an imagined trajectory (see the module docstring)."""
        feat, action = traj["feat"].detach(), traj["action"]
        reward, cont = traj["reward"].float(), traj["cont"].float()
        B, H = action.shape
        assert feat.shape == (B, H + 1, self.feat_dim), (feat.shape, action.shape)
        assert reward.shape == cont.shape == (B, H), (reward.shape, cont.shape)
        cfg = self.cfg

        self.input_norm.update(feat)
        logp_all = self.policy_logits(feat[:, :-1])  # (B, H, A)
        logp, entropy = self.policy_terms(logp_all, action)  # (B, H) each

        raw_value = self.critic(feat)  # (B, H+1, bins)
        value = self.twohot.mean(raw_value)  # (B, H+1)
        with torch.no_grad():
            slow_value = self.twohot.mean(self.slow_critic(feat))  # (B, H+1)
            form = cfg.return_form
            ret = lambda_return(reward, cont, value.detach(), cfg.gamma, cfg.lam, form)  # (B, H)
            slow_ret = lambda_return(reward, cont, slow_value, cfg.gamma, cfg.lam, form)
            scale = self.return_norm.update(ret)
            adv = (ret - value[:, :-1].detach()) / scale  # (B, H)

        policy_loss = self.policy_loss(logp, adv)
        value_loss = self.twohot.loss(raw_value[:, :-1], ret).mean()
        slow_loss = self.twohot.loss(raw_value[:, :-1], slow_ret).mean()
        ent = entropy.mean()
        total = policy_loss + value_loss + cfg.slow_reg_coef * slow_loss - cfg.entropy_coef * ent
        metrics = {
            "loss/policy": policy_loss.detach(), "loss/value": value_loss.detach(),
            "loss/slow_value": slow_loss.detach(), "loss/total": total.detach(),
            "entropy": ent.detach(), "return_scale": scale, "return_mean": ret.mean(),
            "value_mean": value.detach().mean(), "imag_reward_mean": reward.mean(),
            "imag_cont_mean": cont.mean(), "advantage_abs": adv.abs().mean(),
        }
        return total, metrics

    @staticmethod
    def policy_terms(logp_all: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """log pi(a_t | s_t) of the actions taken and the policy entropy, (B, H) each, from the
        policy's log-probabilities ``logp_all`` (B, H, A) on the states acted on."""
        logp = logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)  # (B, H)
        entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B, H)
        return logp, entropy

    @staticmethod
    def policy_loss(logp: Tensor, adv: Tensor) -> Tensor:
        """The policy-gradient term: -mean(log pi(a_t | s_t) * advantage_t). The loss adds the
        entropy bonus ``- entropy_coef * mean(entropy)`` to it."""
        return -(logp * adv).mean()

    def update(self, traj: dict[str, Tensor]) -> dict[str, Tensor]:
        """One LaProp step on ``loss(traj)``, then the slow-critic EMA; metrics stay on device."""
        self.train()
        self.optimizer.zero_grad(set_to_none=True)
        device_type = traj["feat"].device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda"):
            total, metrics = self.loss(traj)
        total.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        # a non-finite loss or gradient skips the step (official: GradScaler's skipped step)
        finite = torch.isfinite(total) & torch.isfinite(metrics["grad_norm"])
        self.optimizer.step(finite=finite)
        self.scheduler.step()
        self.update_slow_critic()
        metrics["finite"] = finite
        return metrics

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """slow <- decay * slow + (1 - decay) * critic."""
        w = 1.0 - self.cfg.slow_critic_decay
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters(), strict=True):
            slow.lerp_(fast, w)

    def parameter_counts(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"actor": count(self.actor), "critic": count(self.critic),
                "slow_critic": count(self.slow_critic)}
