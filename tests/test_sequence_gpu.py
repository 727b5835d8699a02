"""GPU parity: the `torch` backend against mamba-ssm's kernels (`mamba_ssm` backend), on CUDA.

Run on a CUDA machine with mamba-ssm 2.3.2.post1 installed (see the README, "Sequence models"):
    python -m pytest tests/test_sequence_gpu.py -m gpu -v
Skipped without CUDA; the Mamba-1 cases are also skipped when mamba-ssm's compiled extension
`selective_scan_cuda` is not built (the Mamba-2 kernels are Triton and need no extension).

Tolerances (relative error ||a - b|| / ||b||, per output and per gradient tensor):
- fp32, TF32 off: 1e-4 (the SSD kernels alone were measured to agree to 1.5e-5 on an H100);
- bf16 autocast: each backend within 5e-2 of the fp32 torch result.
"""

import pytest
import torch

from drama.sequence import load_mamba_ssm, make_sequence_model

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
    kernels = load_mamba_ssm()
    if not kernels.available(kind):
        pytest.skip(f"mamba_ssm backend for {kind} unavailable: {kernels.reasons[kind]}")


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
    assert make_sequence_model("mamba2", 64, 1, device="cpu").backend == "torch"


@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_other_kinds_step_equals_parallel_on_cuda(kind):
    torch.manual_seed(1)
    model = make_sequence_model(kind, 512, 2).cuda().eval()
    x = torch.randn(2, 37, 512, device="cuda")
    assert_step_equals_parallel(model, x)
