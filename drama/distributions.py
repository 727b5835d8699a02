"""Distributions shared by the world model and the actor-critic.

Glossary (DreamerV3 / Drama paper symbols):
    symlog(x) = sign(x) ln(1 + |x|),  symexp = its inverse.
    TwoHot: a categorical over ``bins`` fixed points in symlog space (255 bins in [-20, 20]
        in the official code); a scalar y is encoded as weights on the two bins around
        symlog(y), the loss is the cross-entropy against that encoding, and the prediction is
        symexp(E[bin]). Used for the reward head (r^) and the critic (v).
    straight_through_categorical: z ~ OneHot(softmax(logits) mixed with ``unimix`` uniform),
        with gradients passed through the probabilities (Bengio et al. 2013); the 1% mix
        keeps KL terms finite.
    sample_index: index samples of a categorical by the Gumbel-max trick (used for the
        latents above and for the policy's actions), with no host synchronisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(torch.abs(x))


class TwoHot(nn.Module):
    """Symlog two-hot regression head target: ``loss(logits, y)`` and ``mean(logits)``.

    ``logits`` (..., bins), ``y`` (...). Values outside [low, high] in symlog space are
    clipped onto the end bins. No host synchronisation anywhere (graph-friendly).
    """

    def __init__(self, bins: int = 255, low: float = -20.0, high: float = 20.0):
        super().__init__()
        assert bins >= 2 and high > low, (bins, low, high)
        self.num_bins = bins
        self.low, self.high = float(low), float(high)
        self.register_buffer("bins", torch.linspace(low, high, bins), persistent=False)

    def encode(self, y: Tensor) -> Tensor:
        """Two-hot weights (..., bins) of symlog(y)."""
        x = symlog(y.to(torch.promote_types(y.dtype, torch.float32))).clamp(self.low, self.high)
        step = (self.high - self.low) / (self.num_bins - 1)
        pos = (x - self.low) / step  # (...) fractional bin index
        below = pos.floor().clamp(0, self.num_bins - 1)
        above = (below + 1).clamp(max=self.num_bins - 1)
        w_above = (pos - below).clamp(0.0, 1.0)  # 0 when below == above (top edge)
        w_below = 1.0 - w_above
        # one-hot by comparison (F.one_hot checks its input on the host); a NaN y gives a NaN
        # row, so a non-finite target is seen as a non-finite loss
        ids = torch.arange(self.num_bins, device=x.device, dtype=x.dtype)
        target = (ids == below.unsqueeze(-1)) * w_below.unsqueeze(-1)
        target = target + (ids == above.unsqueeze(-1)) * w_above.unsqueeze(-1)
        return target + (x * 0.0).unsqueeze(-1)  # (..., bins)

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy between softmax(logits) and the two-hot encoding of y; shape (...)."""
        assert logits.shape[:-1] == y.shape, (logits.shape, y.shape)
        target = self.encode(y)
        return -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1)

    def mean(self, logits: Tensor) -> Tensor:
        """symexp of the expected bin: the scalar prediction, shape (...)."""
        probs = F.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        return symexp((probs * self.bins.to(probs.dtype)).sum(-1))


def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """Log-probabilities of softmax(logits) mixed with ``unimix`` of the uniform distribution."""
    if unimix <= 0.0:
        return F.log_softmax(logits, dim=-1)
    probs = F.softmax(logits, dim=-1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


def straight_through_categorical(
    logits: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """One-hot sample of Categorical(logits) over the last dim with straight-through gradients.

    ``logits`` are log-probabilities (e.g. from :func:`unimix_logits`); returns the same shape.
    The sample is drawn by :func:`sample_index`.
    """
    probs = F.softmax(logits, dim=-1)
    idx = sample_index(logits, generator)  # (...)
    sample = F.one_hot(idx, probs.shape[-1]).to(probs.dtype)
    return probs + (sample - probs).detach()  # forward values exactly one-hot


def sample_index(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Indices (...) drawn from Categorical(logits) over the last dim by Gumbel-argmax.

    argmax_k(logits_k + G_k) with G_k i.i.d. standard Gumbel (-log(-log U)) is distributed
    exactly as softmax(logits) (the Gumbel-max trick), like ``torch.multinomial(softmax(logits),
    1)`` (chi-square tests in tests/test_distributions.py) but without its host
    synchronisations on CUDA, and without raising on non-finite logits (a skipped update
    handles those). float32 whatever the dtype of ``logits`` (bf16 under autocast); ``logits``
    may be unnormalised; -inf entries are never drawn. The clamps only guard log(0); the one
    approximation is the float32 resolution of U, as for any float sampler.
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device)
    gumbel = u.clamp_(min=1e-30).log_().neg_().clamp_(min=1e-30).log_().neg_()
    return torch.argmax(logits.float() + gumbel, dim=-1)


def categorical_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """KL(p || q) of categoricals given as log-probabilities, summed over the last dim."""
    p = logits_p.exp()
    return (p * (logits_p - logits_q)).sum(-1)
