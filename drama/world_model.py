"""Drama's world model: CNN encoder/decoder, categorical latents, Mamba-2 sequence model, heads.

Glossary (Drama paper / DreamerV3 -> code):
    o_t        ``obs``: 64x64x3 uint8 frame seen before action a_t
    z_t        posterior latent, 32 categoricals x 32 classes, straight-through one-hot (1024)
    q(z|o)     ``encode``: encoder + posterior head Linear(1024 -> 1024), 1% unimix
    d_t        ``observe`` / ``step``: sequence output after input (z_t, a_t) (512)
    p(z'|d)    ``prior_logits``: Linear(512 -> 1024), 1% unimix; predicts z_{t+1}
    r^_t       ``reward``: MLP head, symlog two-hot over 255 bins in [-20, 20]; predicts r_t
    c^_t       ``termination``: MLP head logit; predicts the termination flag of step t
    o^_t       ``decode``: decoder from z_t

Time alignment (replay index t): obs_t is seen before a_t; reward_t and termination_t result
from a_t. d_t = seq(stem(z_t, a_t)), so prior(d_t) is scored against the posterior of t + 1
and the reward / termination heads on d_t against reward_t / termination_t.

Loss (per batch of B sequences x T steps):
    L = rec + rew + term + kl_dyn * max(free, KL[sg(q_{t+1}) || p_t]) + kl_rep * max(free,
        KL[q_{t+1} || sg(p_t)])
with rec = squared error summed over C*H*W and averaged over B*T; rew the two-hot
cross-entropy and term the BCE averaged over B*T; each KL summed over the 32 categoricals,
averaged over B*(T-1), then clipped from below by the free bits (1 nat) as in the official
code (free bits on the batch mean, not per element).
"""

from __future__ import annotations

import contextlib
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drama.distributions import TwoHot, categorical_kl, straight_through_categorical, unimix_logits
from drama.networks import Decoder, Encoder, InputStem, MLPHead
from drama.optim import LaProp, linear_warmup
from drama.sequence import make_sequence_model
from drama.model_config import WorldModelConfig

OBS_SHAPE = (64, 64, 3)


class WorldModel(nn.Module):
    """The world model plus its own LaProp optimiser (``optimizer``) and warm-up (``scheduler``)."""

    def __init__(self, cfg: WorldModelConfig, num_actions: int,
                 device: torch.device | str | None = None):
        """``device``: where the model will run (the caller still moves it there with .to);
        it decides the sequence backend under "auto" (None: CUDA if available)."""
        super().__init__()
        if not (isinstance(num_actions, numbers.Integral) and num_actions >= 1):
            raise ValueError(f"num_actions must be a positive int, got {num_actions!r}")
        if cfg.unimix > 0 and cfg.stoch != cfg.classes:
            # the official DistHead divides the uniform term by CategoricalDim (stoch), which is
            # the uniform distribution only when stoch == classes (every preset)
            raise ValueError(f"world_model.unimix > 0 needs stoch == classes (the official code "
                             f"mixes in 1/stoch per class); got stoch={cfg.stoch}, "
                             f"classes={cfg.classes}")
        self.cfg = cfg
        self.num_actions = num_actions = int(num_actions)
        self.latent_dim = cfg.stoch * cfg.classes
        self.encoder = Encoder(cfg.encoder_depth, cfg.encoder_mults, cfg.kernel, OBS_SHAPE[0])
        if self.encoder.feature_shape[1] < 1:
            raise ValueError(f"encoder_mults {cfg.encoder_mults} downsample 64x64 below 1x1")
        self.post_head = nn.Linear(self.encoder.out_dim, self.latent_dim)
        self.prior_head = nn.Linear(cfg.d_model, self.latent_dim)
        self.decoder = Decoder(
            self.latent_dim, self.encoder.feature_shape, cfg.encoder_depth, cfg.encoder_mults,
            cfg.kernel,
        )
        self.stem = InputStem(self.latent_dim, num_actions, cfg.d_model)
        self.sequence = make_sequence_model(
            cfg.sequence_kind, cfg.d_model, cfg.n_layers, backend=cfg.sequence_backend,
            **{"device": device, **cfg.sequence_options},
        )
        self.reward_head = MLPHead(cfg.d_model, cfg.head_hidden, cfg.reward_bins)
        self.termination_head = MLPHead(cfg.d_model, cfg.head_hidden, 1)
        self.twohot = TwoHot(cfg.reward_bins, cfg.reward_low, cfg.reward_high)
        self.optimizer = LaProp(
            self.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
            weight_decay=cfg.weight_decay,
        )
        self.scheduler = linear_warmup(self.optimizer, cfg.warmup_updates)

    # ------------------------------------------------------------------ pieces
    @property
    def device(self) -> torch.device:
        return self.prior_head.weight.device

    def _autocast(self):
        if self.cfg.amp and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()  # fp32 on CPU (and with amp off)

    def _frames(self, obs_u8: Tensor) -> Tensor:
        """(..., 64, 64, 3) uint8 -> (N, 3, 64, 64) float in [0, 1]."""
        if obs_u8.dtype != torch.uint8 or tuple(obs_u8.shape[-3:]) != OBS_SHAPE:
            raise ValueError(f"obs must be uint8 (..., 64, 64, 3), got {obs_u8.dtype} "
                             f"{tuple(obs_u8.shape)}")
        x = obs_u8.reshape(-1, *OBS_SHAPE).permute(0, 3, 1, 2)  # (N, 3, 64, 64)
        return x.float().div_(255.0)

    def _latent_logits(self, head_out: Tensor) -> Tensor:
        logits = head_out.float().unflatten(-1, (self.cfg.stoch, self.cfg.classes))  # (..., S, K)
        return unimix_logits(logits, self.cfg.unimix)

    def encode(self, obs_u8: Tensor) -> Tensor:
        """Posterior log-probabilities (..., 32, 32) of frames (..., 64, 64, 3) uint8."""
        lead = obs_u8.shape[:-3]
        feats = self.encoder(self._frames(obs_u8))  # (N, 1024)
        return self._latent_logits(self.post_head(feats)).reshape(*lead, self.cfg.stoch, -1)

    def sample(self, logits: Tensor) -> Tensor:
        """Straight-through one-hot sample (..., 1024) of logits (..., 32, 32)."""
        assert logits.shape[-2:] == (self.cfg.stoch, self.cfg.classes), logits.shape
        return straight_through_categorical(logits).flatten(-2)

    def decode(self, z: Tensor) -> Tensor:
        """Reconstructed frames (..., 64, 64, 3) float in [0, 1] from latents (..., 1024)."""
        assert z.shape[-1] == self.latent_dim, z.shape
        x = self.decoder(z.reshape(-1, self.latent_dim))  # (N, 3, 64, 64)
        return x.permute(0, 2, 3, 1).reshape(*z.shape[:-1], *OBS_SHAPE)

    def init_state(self, batch_size: int) -> dict[str, Tensor]:
        return self.sequence.init_state(batch_size)

    def step(self, z_t: Tensor, a_t: Tensor, state: dict[str, Tensor]):
        """One recurrent step: (z_t (B, 1024), a_t (B,)) -> (d_t (B, d_model), state)."""
        assert z_t.ndim == 2 and a_t.shape == z_t.shape[:1], (z_t.shape, a_t.shape)
        return self.sequence.step(self.stem(z_t, a_t), state)

    def observe(self, z: Tensor, actions: Tensor) -> Tensor:
        """Parallel pass: (z (B, T, 1024), actions (B, T)) -> d (B, T, d_model)."""
        assert z.ndim == 3 and actions.shape == z.shape[:2], (z.shape, actions.shape)
        return self.sequence(self.stem(z, actions))

    def prior_logits(self, d: Tensor) -> Tensor:
        """Prior log-probabilities (..., 32, 32) of z_{t+1} given d_t."""
        return self._latent_logits(self.prior_head(d))

    def reward(self, d: Tensor) -> Tensor:
        """Predicted reward r^_t (...), float32 (two-hot mean)."""
        return self.twohot.mean(self.reward_head(d))

    def termination(self, d: Tensor) -> Tensor:
        """Termination logit (...), float32; imagination treats logit > 0 as terminal."""
        return self.termination_head(d).float()

    # ------------------------------------------------------------------ training
    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and detached metrics of a replay batch (obs, action, reward, termination)."""
        obs, action = batch["obs"], batch["action"]
        assert obs.ndim == 5 and action.ndim == 2, (obs.shape, action.shape)
        B, T = action.shape
        assert obs.shape[:2] == (B, T) and T >= 2, (obs.shape, action.shape)
        cfg = self.cfg

        x = self._frames(obs)  # (B*T, 3, 64, 64)
        post = self._latent_logits(self.post_head(self.encoder(x)))  # (B*T, S, K)
        post = post.reshape(B, T, cfg.stoch, cfg.classes)  # (B, T, S, K)
        z = self.sample(post)  # (B, T, S*K)
        x_hat = self.decoder(z.reshape(B * T, -1))  # (B*T, 3, 64, 64)
        rec = (x_hat.float() - x).square().sum(dim=(1, 2, 3)).mean()

        d = self.observe(z, action)  # (B, T, D)
        prior = self.prior_logits(d)  # (B, T, S, K)
        rew = self.twohot.loss(self.reward_head(d).float(), batch["reward"].float()).mean()
        term = F.binary_cross_entropy_with_logits(
            self.termination(d), batch["termination"].float()
        )
        # prior(d_t) vs posterior(o_{t+1}); sum over the S categoricals, mean over B*(T-1)
        kl_dyn = categorical_kl(post[:, 1:].detach(), prior[:, :-1]).sum(-1).mean()
        kl_rep = categorical_kl(post[:, 1:], prior[:, :-1].detach()).sum(-1).mean()
        dyn = kl_dyn.clamp(min=cfg.free_bits)  # free bits on the batch mean (official)
        rep = kl_rep.clamp(min=cfg.free_bits)
        total = rec + rew + term + cfg.kl_dyn * dyn + cfg.kl_rep * rep
        with torch.no_grad():
            post_ent = -(post.exp() * post).sum(-1).sum(-1).mean()
            prior_ent = -(prior.exp() * prior).sum(-1).sum(-1).mean()
        metrics = {
            "loss/rec": rec, "loss/rew": rew, "loss/term": term, "loss/dyn": dyn,
            "loss/rep": rep, "loss/total": total, "kl/dyn": kl_dyn, "kl/rep": kl_rep,
            "entropy/post": post_ent, "entropy/prior": prior_ent,
        }  # fmt: skip
        return total, {k: v.detach() for k, v in metrics.items()}

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One optimiser step on ``batch``; returns detached 0-d metrics (no host sync)."""
        self.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            total, metrics = self.loss(batch)
        total.backward()  # bf16 needs no loss scaling (official GradScaler is a no-op for bf16)
        grad_norm = nn.utils.clip_grad_norm_(self.parameters(), self.cfg.grad_clip)
        # a non-finite loss or gradient skips the step (official: GradScaler's skipped step);
        # drama/train.py counts skips and fails after a run of them
        finite = torch.isfinite(total) & torch.isfinite(grad_norm)
        self.optimizer.step(finite=finite)
        self.scheduler.step()
        metrics["grad_norm"] = grad_norm.detach()
        metrics["finite"] = finite
        return metrics

    # ------------------------------------------------------------------ bookkeeping
    def parameter_counts(self) -> dict[str, int]:
        def n(*modules: nn.Module) -> int:
            return sum(p.numel() for m in modules for p in m.parameters())

        counts = {
            "encoder": n(self.encoder),
            "latent_heads": n(self.post_head, self.prior_head),
            "decoder": n(self.decoder),
            "reward_head": n(self.reward_head),
            "termination_head": n(self.termination_head),
            "sequence_model": n(self.stem, self.sequence),  # incl. the input stem
        }
        total = n(self)
        assert total == sum(counts.values()), (total, counts)  # every parameter is in a part
        counts["world_model"] = total
        return counts
