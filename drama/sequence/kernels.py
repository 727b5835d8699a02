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
import importlib.util
import sys
import types
from dataclasses import dataclass, field
from collections.abc import Callable

import torch

from drama.model_config import SEQUENCE_BACKENDS as BACKENDS

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
    installed: bool = False  # a `mamba_ssm` package is on the path (found without importing it)
    import_error: str | None = None  # installed, but importing it raised this (a broken install)

    def available(self, kind: str) -> bool:
        if kind == "mamba2":
            return self.chunk_scan_combined is not None and self.rmsnorm_gated is not None
        if kind == "mamba1":
            return self.selective_scan is not None
        return False


@dataclass(frozen=True)
class BackendChoice:
    """The backend a sequence model is built with, and why (printed at the start of a run)."""

    backend: str
    reason: str
    warn: bool = False  # a fallback the user must hear about (mamba-ssm installed but broken)


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
    installed = importlib.util.find_spec("mamba_ssm") is not None
    if not torch.cuda.is_available():
        why = (
            f"CUDA is not available (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda}); mamba-ssm's kernels run on NVIDIA GPUs only"
        )
        return MambaSSMKernels(reasons={"mamba2": why, "mamba1": why}, installed=installed)
    if not installed:
        why = ("mamba-ssm is not installed (docs/install.md, GPU: a pure-Python wheel built "
               "with MAMBA_SKIP_CUDA_BUILD=TRUE gives the Mamba-2 Triton kernels)")
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
        except Exception as err:  # ImportError (e.g. its transformers import), triton mismatch
            error = f"{type(err).__name__}: {err}"
            why = f"mamba-ssm is installed but could not be imported: {error}"
            return MambaSSMKernels(reasons={"mamba2": why, "mamba1": why}, installed=True,
                                   import_error=error)
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
        installed=True,
    )


def _kernel_summary(kind: str, k: MambaSSMKernels) -> str:
    version = k.version or "?"
    if version != MAMBA_SSM_VERSION:
        version += f" (written and measured against {MAMBA_SSM_VERSION})"
    if kind == "mamba1":
        return f"mamba-ssm {version}: selective_scan_cuda on CUDA"
    conv = ("causal-conv1d" if k.causal_conv1d is not None
            else "torch conv1d (causal-conv1d not installed)")
    return f"mamba-ssm {version}: Triton SSD + gated RMSNorm on CUDA, conv by {conv}"


def choose_backend(kind: str, backend: str,
                   device: torch.device | str | None = None) -> BackendChoice:
    """The backend to build and why: `auto` picks mamba_ssm on CUDA when importable, else torch.

    ``device`` is where the model will run: a non-CUDA device always gets `torch` under `auto`
    (a CPU run on a CUDA machine with mamba-ssm installed must not get the CUDA-only kernels).
    ``device=None`` means "CUDA if available". Asking for `mamba_ssm` where it cannot run
    raises a RuntimeError saying why. Under `auto`, an installed mamba-ssm that fails to import
    falls back to torch with ``warn=True`` (the caller warns; it is never silent).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    has_kernel = kind in ("mamba2", "mamba1")
    if backend == "torch":
        return BackendChoice("torch", "backend 'torch' was asked for")
    if backend == "mamba_ssm" and not has_kernel:
        raise ValueError(
            f"backend 'mamba_ssm' exists only for kinds mamba2 and mamba1, not {kind!r} "
            "(use 'torch' or 'auto')"
        )
    if not has_kernel:  # auto for transformer/gru: cuDNN and SDPA come through torch anyway
        return BackendChoice("torch", f"{kind} has no mamba-ssm kernel (cuDNN/SDPA via torch)")
    wants_cpu = device is not None and torch.device(device).type != "cuda"
    if backend == "auto":
        if wants_cpu:
            return BackendChoice("torch", f"device {str(device)!r} is not CUDA "
                                          "(mamba-ssm's kernels run on CUDA only)")
        kernels = load_mamba_ssm()
        if kernels.available(kind):
            return BackendChoice("mamba_ssm", "auto: " + _kernel_summary(kind, kernels))
        why = kernels.reasons[kind]
        if kernels.import_error is not None:
            return BackendChoice("torch", f"auto fell back to the pure-PyTorch backend because "
                                          f"{why}; fix the install (docs/install.md, GPU) or "
                                          "set the backend to 'torch' explicitly", warn=True)
        return BackendChoice("torch", f"auto: {why}")
    # explicit mamba_ssm
    if wants_cpu:
        raise RuntimeError(
            f"backend 'mamba_ssm' for {kind} needs a CUDA device, but device={device!r} was given"
        )
    kernels = load_mamba_ssm()
    if not kernels.available(kind):
        why = kernels.reasons[kind]
        raise RuntimeError(f"backend 'mamba_ssm' for {kind} cannot run here: {why}")
    return BackendChoice("mamba_ssm", "asked for: " + _kernel_summary(kind, kernels))


def resolve_backend(kind: str, backend: str, device: torch.device | str | None = None) -> str:
    """The backend name only (see :func:`choose_backend`)."""
    return choose_backend(kind, backend, device).backend
