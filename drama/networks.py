"""World-model building blocks: image encoder, image decoder and the MLP heads.

Layer shapes follow the official Drama code (ICLR release, ``sub_models/world_models.py``):

    Encoder  64x64x3 -> conv(k5, s1) -> conv(k5, s2) x4 -> 64 x 4 x 4 = 1024 features,
             channels depth * mults = 16 * (1, 2, 3, 4, 4), each conv + BatchNorm2d + SiLU.
    Decoder  z (1024) -> Linear -> (64, 4, 4) + BatchNorm2d + SiLU
             -> convT(k5, s2, p2, op1) 64->64->48->32->16, each + BatchNorm2d + SiLU
             -> convT(k5, s1, p2) 16->3 -> sigmoid.
    MLPHead  Linear(d, hidden) + RMSNorm + SiLU -> Linear(hidden, out)   (reward: out 255,
             termination: out 1).

Initialisation as the official ``tools.weight_init``: truncated normal with
std = sqrt(1 / fan_avg) / 0.8796 (cut at 2 std) and zero biases for convs and the encoder /
decoder / head linears; the latent heads keep PyTorch's default init (as in the official code).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_TRUNC_STD_CORRECTION = 0.87962566103423978  # std of a unit normal truncated at +-2


def trunc_normal_init_(module: nn.Module) -> None:
    """Official Drama ``weight_init`` for Linear / Conv2d / ConvTranspose2d (fan-avg scaling)."""
    if isinstance(module, nn.Linear):
        fan_in, fan_out = module.in_features, module.out_features
    elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        space = module.kernel_size[0] * module.kernel_size[1]
        fan_in, fan_out = space * module.in_channels, space * module.out_channels
    else:
        return
    std = math.sqrt(1.0 / ((fan_in + fan_out) / 2.0)) / _TRUNC_STD_CORRECTION
    nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class Encoder(nn.Module):
    """(N, 3, H, W) float in [0, 1] -> (N, out_dim) features."""

    def __init__(
        self,
        depth: int = 16,
        mults: tuple[int, ...] = (1, 2, 3, 4, 4),
        kernel: int = 5,
        image_size: int = 64,
        in_channels: int = 3,
    ):
        super().__init__()
        assert kernel % 2 == 1, f"kernel must be odd for 'same' padding, got {kernel}"
        channels = [depth * m for m in mults]
        layers: list[nn.Module] = []
        c_in, size = in_channels, image_size
        for i, c_out in enumerate(channels):
            stride = 1 if i == 0 else 2  # first stride 1, then halve: 64->64->32->16->8->4
            layers += [
                nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
                nn.BatchNorm2d(c_out),
                nn.SiLU(),
            ]
            size = (size + 2 * (kernel // 2) - kernel) // stride + 1
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.net.apply(trunc_normal_init_)
        self.feature_shape = (c_in, size, size)  # (64, 4, 4) at paper size
        self.out_dim = c_in * size * size  # 1024 at paper size

    def forward(self, x: Tensor) -> Tensor:
        assert x.ndim == 4, x.shape
        # NCHW on every device: PyTorch's CPU BatchNorm in channels-last layout is inaccurate in
        # fp32 at large batches (decoder output at 16 x 128 vs a float64 reference: 3.6e-3 in
        # channels-last, 9.8e-7 in NCHW), which moved the paper-batch losses and gradient norms
        # away from the official code's (tests/test_official_parity.py). A frame batch
        # permuted from (N, H, W, C) has channels-last strides, which the convolutions and
        # BatchNorms would keep: made contiguous NCHW here (a no-op for an NCHW tensor)
        return self.net(x.contiguous()).flatten(1)  # (N, out_dim)


class Decoder(nn.Module):
    """(N, latent_dim) -> (N, 3, H, W) in [0, 1] (sigmoid output)."""

    def __init__(
        self,
        latent_dim: int,
        feature_shape: tuple[int, int, int],
        depth: int = 16,
        mults: tuple[int, ...] = (1, 2, 3, 4, 4),
        kernel: int = 5,
        out_channels: int = 3,
    ):
        super().__init__()
        c, h, w = feature_shape
        self.feature_shape = feature_shape
        self.stem = nn.Linear(latent_dim, c * h * w)
        self.stem_norm = nn.Sequential(nn.BatchNorm2d(c), nn.SiLU())
        channels = [depth * m for m in mults]
        layers: list[nn.Module] = []
        c_in = c
        for c_out in reversed(channels[:-1]):  # 64->64->48->32->16, spatial x2 each
            layers += [
                nn.ConvTranspose2d(
                    c_in, c_out, kernel, stride=2, padding=kernel // 2, output_padding=1
                ),
                nn.BatchNorm2d(c_out),
                nn.SiLU(),
            ]
            c_in = c_out
        layers.append(nn.ConvTranspose2d(c_in, out_channels, kernel, stride=1, padding=kernel // 2))
        self.net = nn.Sequential(*layers)
        self.apply(trunc_normal_init_)

    def forward(self, z: Tensor) -> Tensor:
        assert z.ndim == 2, z.shape
        x = self.stem(z).reshape(z.shape[0], *self.feature_shape)  # (N, 64, 4, 4)
        # NCHW, as in the Encoder (accuracy of the CPU BatchNorm)
        x = self.net(self.stem_norm(x))  # (N, 3, 64, 64) pre-sigmoid
        return torch.sigmoid(x)


class MLPHead(nn.Module):
    """Linear(in, hidden) + RMSNorm + SiLU -> Linear(hidden, out); ``out == 1`` squeezes."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, norm_eps: float = 1e-5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.RMSNorm(hidden, eps=norm_eps),
            nn.SiLU(),
            nn.Linear(hidden, out_dim),
        )
        self.net.apply(trunc_normal_init_)
        self.squeeze = out_dim == 1

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(x)
        return y.squeeze(-1) if self.squeeze else y


class InputStem(nn.Module):
    """concat(z_t, onehot(a_t)) -> Linear(latent + |A|, d_model) + RMSNorm + SiLU.

    Part of the official ``MixerModel`` (its ``stem``), kept in the world model here because
    the shared sequence models take d_model-wide inputs. Linear keeps PyTorch's default weight
    init with a zero bias (mamba_ssm ``_init_weights``); RMSNorm eps 1e-5.
    """

    def __init__(self, latent_dim: int, num_actions: int, d_model: int, norm_eps: float = 1e-5):
        super().__init__()
        self.num_actions = num_actions
        self.linear = nn.Linear(latent_dim + num_actions, d_model)
        nn.init.zeros_(self.linear.bias)
        self.norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.act = nn.SiLU()

    def forward(self, z: Tensor, action: Tensor) -> Tensor:
        assert z.shape[:-1] == action.shape, (z.shape, action.shape)
        onehot = nn.functional.one_hot(action.long(), self.num_actions).to(z.dtype)  # (..., |A|)
        x = torch.cat([z, onehot], dim=-1)  # (..., latent + |A|)
        return self.act(self.norm(self.linear(x)))  # (..., d_model)
