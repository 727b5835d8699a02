"""Import the official Drama ICLR release (commit 65b2aac) on a CPU, in fp32.

The release vendors ``mamba_ssm``, whose Mamba-2 path calls Triton kernels, and imports several
packages that are off the computation path. This module makes it importable without CUDA:

* the Triton kernels are replaced by the release's **own** pure-torch references:
    - ``mamba_ssm/ops/triton/layer_norm.py`` (fused dropout + add + RMSNorm: ``layer_norm_fn``,
      ``rms_norm_fn``, ``RMSNorm``) -> its ``rms_norm_ref``, with the kernel's residual rules
      (``residual_in_fp32``; with ``prenorm`` the pre-norm sum is returned) and ``F.dropout``;
    - ``mamba_ssm/ops/triton/layernorm_gated.py`` (gated RMSNorm) -> its ``rms_norm_ref``;
    - ``mamba_ssm/ops/triton/ssd_combined.py`` (``mamba_chunk_scan_combined``,
      ``mamba_split_conv1d_scan_combined``) -> ``ssd_minimal_discrete`` (stable ``segsum``) from
      ``mamba_ssm/modules/ssd_minimal.py``, arranged as the release's
      ``mamba_split_conv1d_scan_ref`` (conv, SiLU, scan, D skip, gated RMSNorm, out_proj);
    - ``selective_state_update`` and ``causal_conv1d`` stay unimportable, so ``Mamba2`` takes its
      own torch branches (``F.conv1d``, the einsum ``step``).
* imports off the computation path are stubbed: ``triton`` (decorators only: no kernel is ever
  launched), the Mamba-1 CUDA extension, ``huggingface_hub``, ``transformers``, ``torchtune``,
  ``kornia``, ``line_profiler``, ``wandb``, ``tensorboardX``, ``colorama`` (printing).

``check_against_recurrence`` verifies the stand-in before anything is recorded: in float64 the
shimmed parallel Mamba-2 path must equal the release's own recurrent ``Mamba2.step``.

Needs ``einops`` and ``pytorch_warmup`` (PyPI), which the release really uses.
"""

from __future__ import annotations

import importlib
import sys
import types
from unittest import mock

import torch
import torch.nn.functional as F


def _stub(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    mod.__path__ = []  # a package, so submodules can be stubbed under it
    sys.modules[name] = mod
    return mod


def _install_stubs() -> None:
    # torch's own optional-triton probes must run before the stub exists (removed again after
    # the release is imported, see import_release)
    import torch._dynamo  # noqa: F401
    import torch._inductor.utils  # noqa: F401

    # triton: the release's kernel files decorate functions at import; nothing is launched
    triton = mock.MagicMock(name="triton")
    triton.__version__ = "3.0.0"
    triton.Config = lambda *a, **kw: types.SimpleNamespace(num_warps=kw.get("num_warps", 4))
    sys.modules["triton"] = triton
    sys.modules["triton.language"] = triton.language
    _stub("line_profiler", profile=lambda f: f)
    _stub("kornia")
    _stub("kornia.augmentation")
    _stub("wandb")
    _stub("colorama", Fore=mock.MagicMock(), Style=mock.MagicMock())
    _stub("tensorboardX", SummaryWriter=object)

    class _HubMixin:  # Mamba2(nn.Module, PyTorchModelHubMixin)
        pass

    _stub("huggingface_hub", PyTorchModelHubMixin=_HubMixin)
    _stub("transformers")
    _stub("transformers.utils", WEIGHTS_NAME="", CONFIG_NAME="")
    _stub("transformers.utils.hub", cached_file=None)
    _stub("transformers.generation", GreedySearchDecoderOnlyOutput=object,
          SampleDecoderOnlyOutput=object, TextStreamer=object)

    class _TorchtuneRMSNorm(torch.nn.Module):  # only used in isinstance checks
        pass

    _stub("torchtune")
    _stub("torchtune.modules", RMSNorm=_TorchtuneRMSNorm)
    _stub("mamba_ssm.ops.selective_scan_interface", selective_scan_fn=None, mamba_inner_fn=None)
    _stub("selective_scan_cuda")
    _stub("causal_conv1d_cuda")


def _layer_norm_fn_ref(ref):
    """The fused Triton ``layer_norm_fn`` semantics on top of the release's ``rms_norm_ref``."""

    def layer_norm_fn(x, weight, bias, residual=None, x1=None, weight1=None, bias1=None,
                      eps=1e-6, dropout_p=0.0, rowscale=None, prenorm=False,
                      residual_in_fp32=False, is_rms_norm=False, return_dropout_mask=False):
        assert is_rms_norm and x1 is None and rowscale is None and not return_dropout_mask
        if dropout_p > 0.0:
            x = F.dropout(x, p=dropout_p)
        out = ref(x, weight, bias, residual=residual, eps=eps, prenorm=prenorm, upcast=False)
        if not prenorm:
            return out
        out, pre = out
        # the kernel returns the residual (pre-norm sum) in fp32 when residual_in_fp32
        return out, pre.float() if residual_in_fp32 else pre

    def rms_norm_fn(x, weight, bias, residual=None, eps=1e-6, dropout_p=0.0, prenorm=False,
                    residual_in_fp32=False, **_):
        return layer_norm_fn(x, weight, bias, residual=residual, eps=eps, dropout_p=dropout_p,
                             prenorm=prenorm, residual_in_fp32=residual_in_fp32,
                             is_rms_norm=True)

    return layer_norm_fn, rms_norm_fn


def import_release(path: str) -> dict[str, types.ModuleType]:
    """Import the release at ``path`` (a checkout of 65b2aac) with the CPU stand-ins."""
    if path not in sys.path:
        sys.path.insert(0, path)
    _install_stubs()
    ln = importlib.import_module("mamba_ssm.ops.triton.layer_norm")
    ln.layer_norm_fn, ln.rms_norm_fn = _layer_norm_fn_ref(ln.rms_norm_ref)

    lng = importlib.import_module("mamba_ssm.ops.triton.layernorm_gated")

    def rmsnorm_fn(x, weight, bias, z=None, eps=1e-6, group_size=None, norm_before_gate=True):
        return lng.rms_norm_ref(x, weight, bias, z=z, eps=eps, group_size=group_size,
                                norm_before_gate=norm_before_gate, upcast=True)

    lng.rmsnorm_fn = rmsnorm_fn
    lng.RMSNorm.forward = lambda self, x, z=None: rmsnorm_fn(
        x, self.weight, self.bias, z=z, eps=self.eps, group_size=self.group_size,
        norm_before_gate=self.norm_before_gate)

    ssd = importlib.import_module("mamba_ssm.ops.triton.ssd_combined")
    # ssd_minimal imports mamba_chunk_scan_combined from ssd_combined: import it after
    minimal = importlib.import_module("mamba_ssm.modules.ssd_minimal")

    def chunk_scan(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None,
                   initial_states=None, seq_idx=None, cu_seqlens=None, dt_softplus=False,
                   dt_limit=(0.0, float("inf")), return_final_states=False,
                   return_varlen_states=False):
        assert z is None and seq_idx is None and cu_seqlens is None and not return_varlen_states
        assert dt_limit == (0.0, float("inf"))
        b, L, h, p = x.shape
        if dt_bias is not None:
            dt = dt + dt_bias
        if dt_softplus:
            dt = F.softplus(dt)
        g = B.shape[2]
        Bh = B.repeat_interleave(h // g, dim=2)  # (b, L, h, n)
        Ch = C.repeat_interleave(h // g, dim=2)
        dtype = x.dtype
        y, final = minimal.ssd_minimal_discrete(
            x * dt[..., None], (A * dt).to(dtype), Bh.to(dtype), Ch.to(dtype), block_len=L,
            initial_states=None if initial_states is None else initial_states[:, None])
        if D is not None:
            y = y + x * (D[:, None] if D.dim() == 1 else D)
        return (y, final) if return_final_states else y

    def split_conv1d_scan(zxbcdt, conv1d_weight, conv1d_bias, dt_bias, A, D, chunk_size,
                          initial_states=None, seq_idx=None, dt_limit=(0.0, float("inf")),
                          return_final_states=False, activation="silu", rmsnorm_weight=None,
                          rmsnorm_eps=1e-6, outproj_weight=None, outproj_bias=None,
                          headdim=None, ngroups=1, norm_before_gate=True):
        # as the release's mamba_split_conv1d_scan_ref, with the minimal SSD as the scan
        assert initial_states is None and seq_idx is None and not return_final_states
        nheads = D.shape[0]
        headdim = headdim if D.dim() == 1 else D.shape[1]
        dim = nheads * headdim
        batch, seqlen, _ = zxbcdt.shape
        dstate = (zxbcdt.shape[-1] - 2 * dim - nheads) // ngroups // 2
        z, xBC, dt = torch.split(zxbcdt, [dim, dim + 2 * ngroups * dstate, nheads], dim=-1)
        width = conv1d_weight.shape[-1]
        xBC = F.conv1d(xBC.transpose(1, 2), conv1d_weight[:, None], conv1d_bias,
                       padding=width - 1, groups=xBC.shape[-1])[..., :seqlen]
        xBC = F.silu(xBC).transpose(1, 2)
        x, B, C = torch.split(xBC, [dim, ngroups * dstate, ngroups * dstate], dim=-1)
        y = chunk_scan(x.reshape(batch, seqlen, nheads, headdim), dt, A,
                       B.reshape(batch, seqlen, ngroups, dstate),
                       C.reshape(batch, seqlen, ngroups, dstate), chunk_size, D=D.float(),
                       dt_bias=dt_bias, dt_softplus=True)
        y = y.reshape(batch, seqlen, dim)
        if rmsnorm_weight is not None:
            y = rmsnorm_fn(y, rmsnorm_weight, None, z=z, eps=rmsnorm_eps,
                           group_size=dim // ngroups, norm_before_gate=norm_before_gate)
        if outproj_weight is not None:
            y = F.linear(y, outproj_weight, outproj_bias)
        return y

    ssd.mamba_chunk_scan_combined = chunk_scan
    ssd.mamba_split_conv1d_scan_combined = split_conv1d_scan
    m2 = importlib.import_module("mamba_ssm.modules.mamba2")
    m2.mamba_chunk_scan_combined = chunk_scan
    m2.mamba_split_conv1d_scan_combined = split_conv1d_scan
    m2.causal_conv1d_fn = m2.causal_conv1d_update = None
    m2.selective_state_update = None
    for name in ("mamba_ssm.modules.block", "mamba_ssm.models.mixer_seq_simple"):
        mod = importlib.import_module(name)
        mod.layer_norm_fn = ln.layer_norm_fn
        if hasattr(mod, "rms_norm_fn"):
            mod.rms_norm_fn = ln.rms_norm_fn
    mods = {"mamba2": m2, "layer_norm": ln}
    for name in [n for n in sys.modules if n == "triton" or n.startswith("triton.")]:
        del sys.modules[name]
    for name in ("sub_models.world_models", "agents", "sub_models.laprop",
                 "sub_models.functions_losses", "replay_buffer", "utils"):
        mods[name.split(".")[-1]] = importlib.import_module(name)
    for name in [n for n in sys.modules if n == "triton" or n.startswith("triton.")]:
        del sys.modules[name]
    return mods


def check_against_recurrence(mods, d_model: int = 64, length: int = 24, seed: int = 0) -> float:
    """Max |parallel - recurrent| of the release's Mamba2 in float64 (stand-in vs its own step)."""
    torch.manual_seed(seed)
    m = mods["mamba2"].Mamba2(d_model, d_state=16, headdim=16, chunk_size=8, layer_idx=0)
    m = m.double()
    with torch.no_grad():
        m.dt_bias.uniform_(-3.0, 0.0)
        u = torch.randn(2, length, d_model, dtype=torch.float64)
        par = m(u)
        conv = torch.zeros(2, m.d_ssm + 2 * m.ngroups * m.d_state, m.d_conv, dtype=torch.float64)
        ssm = torch.zeros(2, m.nheads, m.headdim, m.d_state, dtype=torch.float64)
        rec = torch.cat([m.step(u[:, t:t + 1], conv, ssm)[0] for t in range(length)], dim=1)
    return float((par - rec).abs().max())
