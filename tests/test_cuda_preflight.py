"""CPU checks of the CUDA code paths (issue 14): what would crash or stall the first GPU run.

No GPU runs here. Where a test needs "a CUDA machine with mamba-ssm installed", it builds one
from two test-only stand-ins, and says so: `torch.cuda.is_available` patched to True, and a tiny
`mamba_ssm` package written to tmp_path whose layout and import chain copy mamba-ssm
2.3.2.post1's (its `__init__` imports `selective_scan_interface`, which imports the compiled
`selective_scan_cuda` unconditionally). The stand-in kernels raise if called: these tests
exercise the backend *choice*, never the kernels (tests/test_sequence_gpu.py does, on a GPU).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from drama.checkpoint import use_deterministic_algorithms
from drama.sequence import choose_backend, load_mamba_ssm, make_sequence_model
from drama.sequence.mamba2 import Mamba2Mixer, causal_conv1d_input
from drama.sequence.ssd import cumsum, scan_cumsum, ssd_chunked
from drama.world_model import WorldModel, WorldModelConfig

ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------- stand-ins
STAND_IN_FILES = {
    "__init__.py": ('__version__ = "2.3.2.post1"\n{broken}'
                    "from mamba_ssm.ops.selective_scan_interface import selective_scan_fn\n"),
    "ops/__init__.py": "",
    "ops/triton/__init__.py": "",
    "ops/selective_scan_interface.py": ("import selective_scan_cuda  # as 2.3.2.post1\n"
                                        "def selective_scan_fn(*a, **k):\n"
                                        "    raise RuntimeError('stand-in kernel')\n"),
    "ops/triton/ssd_combined.py": ("def mamba_chunk_scan_combined(*a, **k):\n"
                                   "    raise RuntimeError('stand-in kernel')\n"),
    "ops/triton/layernorm_gated.py": ("def rmsnorm_fn(*a, **k):\n"
                                      "    raise RuntimeError('stand-in kernel')\n"),
}
TRANSFORMERS_ERROR = ("cannot import name 'GenerateDecoderOnlyOutput' from "
                      "'transformers.generation'")


def _forget_mamba_ssm():
    for name in [m for m in sys.modules if m == "mamba_ssm" or m.startswith("mamba_ssm.")]:
        del sys.modules[name]
    load_mamba_ssm.cache_clear()


@pytest.fixture
def cuda_machine(tmp_path, monkeypatch):
    """A pretend CUDA machine; returns install(broken=None) that puts the stand-in on the path."""

    def install(broken: str | None = None):
        root = tmp_path / "site"
        for rel, text in STAND_IN_FILES.items():
            path = root / "mamba_ssm" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.format(broken=f"raise ImportError({broken!r})\n" if broken
                                        else ""))
        monkeypatch.syspath_prepend(str(root))
        _forget_mamba_ssm()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # test-only stand-in
    _forget_mamba_ssm()
    yield install
    _forget_mamba_ssm()


# ----------------------------------------------------------------------------- item 3 and 7
def test_auto_backend_follows_the_device_on_a_cuda_machine(cuda_machine):
    cuda_machine()
    kernels = load_mamba_ssm()
    assert kernels.installed and kernels.import_error is None and kernels.available("mamba2")
    assert "selective_scan_cuda" not in sys.modules  # the import-time placeholder is gone again
    on_gpu = choose_backend("mamba2", "auto", "cuda")
    assert on_gpu.backend == "mamba_ssm" and "2.3.2.post1" in on_gpu.reason
    assert "torch conv1d (causal-conv1d not installed)" in on_gpu.reason
    on_cpu = choose_backend("mamba2", "auto", "cpu")
    assert on_cpu.backend == "torch" and "not CUDA" in on_cpu.reason and not on_cpu.warn
    # the world model passes its device: a CPU run on this machine builds the torch backend
    cfg = WorldModelConfig(d_model=32, encoder_depth=2, head_hidden=16, stoch=4, classes=4)
    wm = WorldModel(cfg, 3, device="cpu")
    assert wm.sequence.backend == "torch" and "not CUDA" in wm.sequence.backend_reason
    wm.observe(torch.zeros(1, 4, 16), torch.zeros(1, 4, dtype=torch.long))  # runs on the CPU
    # without a device, auto means "CUDA if available": the kernels, unusable on a CPU tensor
    # (this is what the CPU runs got before the device was passed)
    blind = make_sequence_model("mamba2", 32, 1)
    assert blind.backend == "mamba_ssm"
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        blind(torch.zeros(1, 4, 32))
    # Mamba-1 with the pure-Python wheel (no selective_scan_cuda): torch, saying why, no warning
    m1 = choose_backend("mamba1", "auto", "cuda")
    assert m1.backend == "torch" and "selective_scan_cuda" in m1.reason and not m1.warn
    with pytest.raises(RuntimeError, match="selective_scan_cuda"):
        choose_backend("mamba1", "mamba_ssm", "cuda")


def test_broken_mamba_ssm_install_is_loud(cuda_machine):
    cuda_machine(broken=TRANSFORMERS_ERROR)
    kernels = load_mamba_ssm()
    assert kernels.installed and TRANSFORMERS_ERROR in kernels.import_error
    with pytest.warns(RuntimeWarning, match="installed but could not be imported") as rec:
        model = make_sequence_model("mamba2", 32, 1)
    assert TRANSFORMERS_ERROR in str(rec[0].message)
    assert model.backend == "torch" and TRANSFORMERS_ERROR in model.backend_reason
    with pytest.raises(RuntimeError, match="GenerateDecoderOnlyOutput"):
        make_sequence_model("mamba2", 32, 1, backend="mamba_ssm")
    # an explicit torch backend, or a CPU device, is no fallback: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_sequence_model("mamba2", 32, 1, backend="torch")
        make_sequence_model("mamba2", 32, 1, device="cpu")


@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is not None,
                    reason="mamba-ssm is installed here")
def test_mamba_ssm_not_installed_says_so(cuda_machine):
    choice = choose_backend("mamba2", "auto", "cuda")
    assert choice.backend == "torch" and "not installed" in choice.reason and not choice.warn
    with pytest.raises(RuntimeError, match="not installed"):
        choose_backend("mamba2", "mamba_ssm", "cuda")


# ----------------------------------------------------------------------------- item 4
def causal_conv1d_accepts(x: torch.Tensor) -> bool:
    """causal-conv1d 1.6.x's layout checks (csrc/causal_conv1d.cpp, causal_conv1d_fwd)."""
    if not (x.stride(2) == 1 or x.stride(1) == 1):
        return False
    channel_last = x.stride(1) == 1 and x.stride(2) > 1
    return not channel_last or (x.shape[1] % 8 == 0 and x.stride(2) % 8 == 0
                                and x.stride(0) % 8 == 0)


@pytest.mark.parametrize("d_model,d_state,old_ok", [(512, 16, True), (64, 16, False),
                                                    (32, 16, False), (64, 13, False)])
def test_causal_conv1d_gets_a_layout_it_accepts(d_model, d_state, old_ok):
    mixer = Mamba2Mixer(d_model, d_state=d_state, headdim=32)
    u = torch.randn(2, 10, d_model)
    _, xBC, _ = torch.split(mixer.in_proj(u), [mixer.d_inner, mixer.conv_dim, mixer.nheads], -1)
    assert causal_conv1d_accepts(xBC.transpose(1, 2)) == old_ok  # what was passed before
    fixed = causal_conv1d_input(xBC)
    assert causal_conv1d_accepts(fixed)
    assert torch.equal(fixed, xBC.transpose(1, 2))
    if old_ok:
        assert fixed.data_ptr() == xBC.data_ptr()  # no copy where none is needed


# ----------------------------------------------------------------------------- item 5
def test_scan_cumsum_equals_cumsum_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    for shape, dim in [((3, 4, 256), -1), ((2, 5, 37, 37), -2), ((1, 7), 1), ((4, 1), -1)]:
        x = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
        cot = torch.randn(shape, generator=g, dtype=torch.float64)
        ref = torch.cumsum(x, dim)
        (gref,) = torch.autograd.grad((ref * cot).sum(), x)
        got = scan_cumsum(x, dim)
        (ggot,) = torch.autograd.grad((got * cot).sum(), x)
        torch.testing.assert_close(got, ref)
        torch.testing.assert_close(ggot, gref)
    # float32 at the SSD's chunk length: float rounding only
    x = torch.randn(8, 256, generator=g)
    torch.testing.assert_close(scan_cumsum(x, -1), torch.cumsum(x, -1), rtol=1e-5, atol=1e-4)


def test_deterministic_mode_on_cpu_keeps_torch_cumsum(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    was = torch.are_deterministic_algorithms_enabled()
    try:
        use_deterministic_algorithms()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled()
        x = torch.randn(4, 33)
        assert torch.equal(cumsum(x, -1), torch.cumsum(x, -1))  # CPU runs are bit-unchanged
        # the SSD under the deterministic mode equals the SSD with scan_cumsum throughout
        args = (torch.randn(2, 40, 2, 4), torch.rand(2, 40, 2) * 0.1, -torch.rand(2) - 0.5,
                torch.randn(2, 40, 1, 3), torch.randn(2, 40, 1, 3))
        y = ssd_chunked(*args, chunk_size=16)
        monkeypatch.setattr("drama.sequence.ssd.cumsum", scan_cumsum)
        torch.testing.assert_close(ssd_chunked(*args, chunk_size=16), y, rtol=1e-5, atol=1e-6)
    finally:
        torch.use_deterministic_algorithms(was)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    use_deterministic_algorithms()  # a user's own setting is kept
    torch.use_deterministic_algorithms(was)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


# ----------------------------------------------------------------------------- item 2
# A checkpoint written on CUDA resumes through the CPU: tests/test_train.py's exact-resume test.


# ----------------------------------------------------------------------------- item 6 and 8
def test_gpu_test_module_sets_triton_fp32_and_autotune_env_before_any_kernel():
    code = ("import os, sys; sys.path.insert(0, 'tests'); import test_sequence_gpu; "
            "import sys as s; assert 'mamba_ssm' not in s.modules; "
            "print(os.environ['TRITON_F32_DEFAULT'], os.environ['MAMBA_DETERMINISTIC'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRITON_F32_DEFAULT", "MAMBA_DETERMINISTIC")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ieee", "1"]
