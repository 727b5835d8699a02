"""Optional mamba-ssm kernels (CUDA only) and the backend choice.

The `torch` backend needs nothing from here. The `mamba_ssm` backend uses, from mamba-ssm
2.3.2.post1:
- Mamba-2: the Triton SSD kernel `mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined`
  and the Triton gated RMSNorm `mamba_ssm.ops.triton.layernorm_gated.rmsnorm_fn`. Neither needs a
  compiled extension; `causal_conv1d_fn` (package causal-conv1d) is used for the depthwise
  convolution when it is installed, else `torch.nn.functional.conv1d`.
- Mamba-1: `mamba_ssm.ops.selective_scan_interface.selective_scan_fn`, which needs the compiled
  CUDA extension `selective_scan_cuda`.

The unconditional import (handled deliberately): mamba-ssm 2.3.2.post1's `mamba_ssm/__init__.py`
imports `selective_scan_interface`, which runs `import selective_scan_cuda` unconditionally, so
without that compiled extension *every* `import mamba_ssm.<anything>` fails, including the
Triton-only Mamba-2 kernels. When the real extension is missing we put a placeholder module under
the name `selective_scan_cuda` into `sys.modules` for the duration of the import only (it raises
ImportError, naming the cause, if anything touches it), import the Triton kernels, then remove the
placeholder again so that no later `import selective_scan_cuda` elsewhere sees it. Mamba-1's
`mamba_ssm` backend is then reported unavailable, with that reason. (The upstream main branch
already wraps this import in try/except; the PyPI release does not.)
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
from dataclasses import dataclass, field
from collections.abc import Callable

import torch

BACKENDS = ("auto", "torch", "mamba_ssm")
MAMBA_SSM_VERSION = "2.3.2.post1"  # the release this code was written and measured against


@dataclass(frozen=True)
class MambaSSMKernels:
    """What could be imported from mamba-ssm; a None callable comes with its reason."""

    version: str | None = None
    chunk_scan_combined: Callable | None = None  # Mamba-2 Triton SSD
    rmsnorm_gated: Callable | None = None  # Triton gated RMSNorm
    causal_conv1d: Callable | None = None  # optional (causal-conv1d package)
    selective_scan: Callable | None = None  # Mamba-1 CUDA scan
    reasons: dict[str, str] = field(default_factory=dict)  # kind -> why unavailable

    def available(self, kind: str) -> bool:
        if kind == "mamba2":
            return self.chunk_scan_combined is not None and self.rmsnorm_gated is not None
        if kind == "mamba1":
            return self.selective_scan is not None
        return False


def _placeholder_selective_scan_cuda(reason: str) -> types.ModuleType:
    module = types.ModuleType("selective_scan_cuda")
    module.__doc__ = "Placeholder from drama.sequence.kernels: the extension was not built."

    def __getattr__(name: str):
        raise ImportError(
            f"selective_scan_cuda.{name} is unavailable: mamba-ssm's compiled CUDA extension "
            f"was not built ({reason}); Mamba-1 needs backend='torch'"
        )

    module.__getattr__ = __getattr__
    return module


@functools.lru_cache(maxsize=1)
def load_mamba_ssm() -> MambaSSMKernels:
    """Import mamba-ssm's kernels once; never raises, records why something is missing."""
    if not torch.cuda.is_available():
        why = (
            f"CUDA is not available (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda}); mamba-ssm's kernels run on NVIDIA GPUs only"
        )
        return MambaSSMKernels(reasons={"mamba2": why, "mamba1": why})
    reasons: dict[str, str] = {}
    placeholder = None
    try:
        importlib.import_module("selective_scan_cuda")
    except ImportError as err:
        reasons["mamba1"] = f"mamba-ssm's CUDA extension selective_scan_cuda is not built: {err}"
        if "selective_scan_cuda" not in sys.modules:
            placeholder = _placeholder_selective_scan_cuda(str(err))
            sys.modules["selective_scan_cuda"] = placeholder
    try:
        try:
            mamba_ssm = importlib.import_module("mamba_ssm")
            ssd = importlib.import_module("mamba_ssm.ops.triton.ssd_combined")
            gated = importlib.import_module("mamba_ssm.ops.triton.layernorm_gated")
            scan = importlib.import_module("mamba_ssm.ops.selective_scan_interface")
        except Exception as err:  # ImportError, or a triton/CUDA mismatch raised at import
            why = f"mamba_ssm could not be imported: {type(err).__name__}: {err}"
            return MambaSSMKernels(reasons={"mamba2": why, "mamba1": reasons.get("mamba1", why)})
    finally:
        if placeholder is not None and sys.modules.get("selective_scan_cuda") is placeholder:
            del sys.modules["selective_scan_cuda"]
    try:
        causal_conv1d_fn = importlib.import_module("causal_conv1d").causal_conv1d_fn
    except ImportError:
        causal_conv1d_fn = None  # the torch depthwise conv1d is used instead
    return MambaSSMKernels(
        version=getattr(mamba_ssm, "__version__", None),
        chunk_scan_combined=ssd.mamba_chunk_scan_combined,
        rmsnorm_gated=gated.rmsnorm_fn,
        causal_conv1d=causal_conv1d_fn,
        selective_scan=None if "mamba1" in reasons else scan.selective_scan_fn,
        reasons=reasons,
    )


def resolve_backend(kind: str, backend: str, device: torch.device | str | None = None) -> str:
    """The backend to build: `auto` picks mamba_ssm on CUDA when importable, else torch.

    Asking for `mamba_ssm` where it cannot run raises a RuntimeError saying why; there is no
    silent fallback for an explicit request.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    has_kernel = kind in ("mamba2", "mamba1")
    if backend == "torch":
        return "torch"
    if backend == "mamba_ssm" and not has_kernel:
        raise ValueError(
            f"backend 'mamba_ssm' exists only for kinds mamba2 and mamba1, not {kind!r} "
            "(use 'torch' or 'auto')"
        )
    if not has_kernel:
        return "torch"  # auto for transformer/gru: cuDNN and SDPA come through torch anyway
    wants_cpu = device is not None and torch.device(device).type != "cuda"
    if backend == "auto":
        if wants_cpu:
            return "torch"
        return "mamba_ssm" if load_mamba_ssm().available(kind) else "torch"
    # explicit mamba_ssm
    if wants_cpu:
        raise RuntimeError(
            f"backend 'mamba_ssm' for {kind} needs a CUDA device, but device={device!r} was given"
        )
    kernels = load_mamba_ssm()
    if not kernels.available(kind):
        why = kernels.reasons[kind]
        raise RuntimeError(f"backend 'mamba_ssm' for {kind} cannot run here: {why}")
    return "mamba_ssm"
