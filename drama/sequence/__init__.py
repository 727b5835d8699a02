"""Sequence models behind one interface: Mamba-2 (Drama), Mamba-1, Transformer, GRU.

    model = make_sequence_model(kind, d_model, n_layers, backend="auto", **options)
    y = model(x)                              # x (B, L, D) -> (B, L, D), parallel over L
    state = model.init_state(batch_size)      # dict of fixed-shape tensors, zeros
    y_t, state = model.step(x_t, state)       # x_t (B, D) -> (B, D); equals the parallel pass
    model.backend                             # "torch" or "mamba_ssm": the backend actually used
    model.backend_reason                      # why that backend (printed at the start of a run)

Defaults are the paper's configuration (official code, ICLR release); the caller passes d_model
(512) and n_layers (2). The world model's input stem (Linear + RMSNorm + SiLU) is not in here.
See each kind's options (drama.model_config.SEQUENCE_OPTIONS) for what can be changed.
"""

from __future__ import annotations

import warnings
from functools import partial

import torch.nn as nn

from drama.sequence.blocks import ResidualStack
from drama.sequence.gru import GRUMixer
from drama.model_config import SEQUENCE_KINDS
from drama.model_config import SEQUENCE_OPTIONS as OPTIONS
from drama.sequence.kernels import BACKENDS, BackendChoice, choose_backend, load_mamba_ssm
from drama.sequence.mamba1 import Mamba1Mixer
from drama.sequence.mamba2 import Mamba2Mixer
from drama.sequence.transformer import TransformerSequenceModel

__all__ = ["BACKENDS", "OPTIONS", "SEQUENCE_KINDS", "BackendChoice", "choose_backend",
           "load_mamba_ssm", "make_sequence_model"]


def make_sequence_model(kind: str, d_model: int, n_layers: int, *, backend: str = "auto",
                        **options) -> nn.Module:
    """Build a sequence model; unknown kinds, backends or options raise ValueError.

    Pass ``device`` (where the model will run): with backend="auto" it decides between the
    mamba-ssm kernels (CUDA only) and torch. A broken mamba-ssm install under "auto" gives a
    RuntimeWarning naming the import error (and ``model.backend_reason`` records it).
    """
    if kind not in SEQUENCE_KINDS:
        raise ValueError(f"unknown sequence model kind {kind!r}; expected one of {SEQUENCE_KINDS}")
    unknown = sorted(set(options) - set(OPTIONS[kind]))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for sequence model {kind!r}; "
            f"valid options: {sorted(OPTIONS[kind])}"
        )
    if not all(isinstance(v, int) and v > 0 for v in (d_model, n_layers)):
        raise ValueError(f"d_model and n_layers must be positive ints, got {d_model}, {n_layers}")
    opts = {**OPTIONS[kind], **options}
    device = opts.pop("device")
    choice = choose_backend(kind, backend, device)
    if choice.warn:
        warnings.warn(f"drama.sequence ({kind}): {choice.reason}", RuntimeWarning, stacklevel=2)
    backend = choice.backend
    if kind == "transformer":
        if opts["d_ff"] is None:
            opts["d_ff"] = 2 * d_model
        model = TransformerSequenceModel(d_model, n_layers, **opts)
    else:
        stack = {"dropout": opts.pop("dropout"), "norm_eps": opts.pop("norm_eps")}
        if kind == "mamba2":
            make_mixer = partial(Mamba2Mixer, d_model, backend=backend, **opts)
        elif kind == "mamba1":
            make_mixer = partial(Mamba1Mixer, d_model, backend=backend, **opts)
        else:
            make_mixer = partial(GRUMixer, d_model)
        model = ResidualStack(d_model, n_layers, make_mixer, backend=backend, **stack)
    model.kind, model.backend_reason = kind, choice.reason
    return model if device is None else model.to(device)
