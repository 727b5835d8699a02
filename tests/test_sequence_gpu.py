"""GPU parity: the `torch` backend against mamba-ssm's kernels (`mamba_ssm` backend), on CUDA.

Run on a CUDA machine with mamba-ssm 2.3.2.post1 installed (docs/install.md, "GPU install"):
    python -m pytest tests/test_sequence_gpu.py -m gpu -v
Skipped without CUDA. With CUDA present, a mamba_ssm backend that cannot load (not installed,
or installed but failing to import, e.g. through its transformers import) FAILS the kernel
tests with the reason; only the Mamba-1 cases are skipped when mamba-ssm imports but its
compiled extension `selective_scan_cuda` was not built (the pure-Python wheel of docs/install.md).

Tolerances (relative error ||a - b|| / ||b||, per output and per gradient tensor):
- fp32, TF32 off: 1e-4 (the SSD kernels alone were measured to agree to 1.5e-5 on an H100);
- bf16 autocast: each backend within 5e-2 of the fp32 torch result.

Environment, set here at import, before any Triton kernel is compiled in this process (pytest
imports every test module before it runs a test; Triton's in-process kernel cache does not key
on these variables, so setting them later would not reach kernels already compiled):
- TRITON_F32_DEFAULT=ieee: Triton's `tl.dot` otherwise runs fp32 inputs in TF32 (about 1e-4
  to 5e-4 relative error in the SSD gradients, above the fp32 tolerance; torch's TF32 flags
  below do not reach Triton). It also applies to any other fp32 Triton dot in this session.
- MAMBA_DETERMINISTIC=1 (unless already set): mamba-ssm then autotunes nothing (one
  configuration per SSD kernel instead of up to 201 benchmarked across 23 kernels on the first
  call) and uses its deterministic backward reductions. Read when mamba_ssm is imported.
"""

import os

os.environ["TRITON_F32_DEFAULT"] = "ieee"
os.environ.setdefault("MAMBA_DETERMINISTIC", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from drama.sequence import load_mamba_ssm, make_sequence_model  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
FP32_TOL = 1e-4
BF16_TOL = 5e-2


def rel_err(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


@pytest.fixture(autouse=True)
def no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def need_kernel(kind):
    """CUDA is here (module skip otherwise): a kernel backend that cannot load is a failure,
    except Mamba-1's CUDA extension, which the documented pure-Python install leaves out."""
    kernels = load_mamba_ssm()
    if kernels.available(kind):
        return
    why = kernels.reasons[kind]
    if kind == "mamba1" and kernels.available("mamba2"):  # imports fine; extension not built
        pytest.skip(f"mamba_ssm backend for mamba1 unavailable: {why}")
    pytest.fail(f"CUDA is present but the mamba_ssm backend for {kind} cannot load: {why}")


def pair(kind, **options):
    """The same weights on both backends (the state dict moves between them)."""
    torch.manual_seed(0)
    ref = make_sequence_model(kind, 512, 2, backend="torch", **options).cuda().eval()
    fast = make_sequence_model(kind, 512, 2, backend="mamba_ssm", **options).cuda().eval()
    fast.load_state_dict(ref.state_dict())
    assert (ref.backend, fast.backend) == ("torch", "mamba_ssm")
    return ref, fast


def fwd_bwd(model, x, cot, dtype=None):
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
        y = model(x)
    (y.float() * cot).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    grads["input"] = x.grad.detach().clone()
    return y.detach().float(), grads


def compare(y, grads, y_ref, grads_ref, tol):
    errors = {"output": rel_err(y, y_ref)}
    errors.update({n: rel_err(grads[n], grads_ref[n]) for n in grads_ref})
    worst = max(errors, key=errors.get)
    print(f"worst relative error {errors[worst]:.2e} ({worst}); output {errors['output']:.2e}")
    assert errors[worst] <= tol, (worst, errors[worst], errors)


@pytest.mark.parametrize("kind", ["mamba2", "mamba1"])
@pytest.mark.parametrize("length", [64, 300])  # 300: not a multiple of the chunk size 256
def test_fp32_parity_forward_and_backward(kind, length):
    need_kernel(kind)
    ref, fast = pair(kind)
    x = torch.randn(4, length, 512, device="cuda")
    cot = torch.randn(4, length, 512, device="cuda")
    compare(*fwd_bwd(fast, x, cot), *fwd_bwd(ref, x, cot), FP32_TOL)


@pytest.mark.parametrize("kind", ["mamba2", "mamba1"])
def test_bf16_autocast_parity(kind):
    need_kernel(kind)
    ref, fast = pair(kind)
    x = torch.randn(4, 128, 512, device="cuda")
    cot = torch.randn(4, 128, 512, device="cuda")
    truth = fwd_bwd(ref, x, cot)
    compare(*fwd_bwd(ref, x, cot, torch.bfloat16), *truth, BF16_TOL)
    compare(*fwd_bwd(fast, x, cot, torch.bfloat16), *truth, BF16_TOL)



@torch.no_grad()
def assert_step_equals_parallel(model, x):
    """Stepping ``model`` through x (B, L, D) one position at a time equals its parallel pass."""
    y = model(x)
    state = model.init_state(x.shape[0])
    ys = []
    for t in range(x.shape[1]):
        y_t, state = model.step(x[:, t], state)
        ys.append(y_t)
    assert rel_err(torch.stack(ys, 1), y) <= FP32_TOL

@pytest.mark.parametrize("kind", ["mamba2", "mamba1"])
def test_kernel_backend_step_equals_parallel(kind):
    need_kernel(kind)
    _, fast = pair(kind)
    x = torch.randn(2, 37, 512, device="cuda")
    assert_step_equals_parallel(fast, x)


def test_auto_picks_the_kernels_on_cuda():
    need_kernel("mamba2")
    assert make_sequence_model("mamba2", 64, 1).backend == "mamba_ssm"
    assert make_sequence_model("mamba2", 64, 1, device="cuda").backend == "mamba_ssm"
    assert make_sequence_model("mamba2", 64, 1, device="cpu").backend == "torch"
    from drama.world_model import WorldModel, WorldModelConfig

    cfg = WorldModelConfig(d_model=64, encoder_depth=2, head_hidden=16, stoch=4, classes=4)
    assert WorldModel(cfg, 3, device="cpu").sequence.backend == "torch"
    assert WorldModel(cfg, 3, device="cuda").sequence.backend == "mamba_ssm"


@pytest.mark.parametrize("d_model", [32, 64, 512])  # 32, 64: in_proj rows not multiples of 8
def test_kernel_backend_at_debug_and_paper_widths(d_model):
    """The kernel path (causal-conv1d when installed) at every width the presets use, fp32
    and bf16, forward and backward, against the torch backend."""
    need_kernel("mamba2")
    torch.manual_seed(0)
    ref = make_sequence_model("mamba2", d_model, 2, backend="torch").cuda().eval()
    fast = make_sequence_model("mamba2", d_model, 2, backend="mamba_ssm").cuda().eval()
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(3, 70, d_model, device="cuda")
    cot = torch.randn(3, 70, d_model, device="cuda")
    compare(*fwd_bwd(fast, x, cot), *fwd_bwd(ref, x, cot), FP32_TOL)
    truth = fwd_bwd(ref, x, cot)
    compare(*fwd_bwd(fast, x, cot, torch.bfloat16), *truth, BF16_TOL)


@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_other_kinds_step_equals_parallel_on_cuda(kind):
    torch.manual_seed(1)
    model = make_sequence_model(kind, 512, 2).cuda().eval()
    x = torch.randn(2, 37, 512, device="cuda")
    assert_step_equals_parallel(model, x)
