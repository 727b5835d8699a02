"""make_sequence_model: every kind builds on CPU, step == parallel, parameters, errors."""

import pytest
import torch
import torch.nn as nn

from drama.sequence import OPTIONS, SEQUENCE_KINDS, load_mamba_ssm, make_sequence_model

SMALL = {"mamba2": {"chunk_size": 16, "headdim": 16}, "mamba1": {}, "transformer": {"n_heads": 4},
         "gru": {}}


def run_steps(model, x, state=None):
    state = model.init_state(x.shape[0]) if state is None else state
    ys = []
    for t in range(x.shape[1]):
        y_t, state = model.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, dim=1), state


@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_step_equals_parallel(kind):
    torch.manual_seed(0)
    model = make_sequence_model(kind, 32, 2, **SMALL[kind]).eval()
    assert model.backend == "torch" and model.kind == kind
    x = torch.randn(3, 37, 32)  # 37: not a multiple of the chunk size 16
    with torch.no_grad():
        y = model(x)
        y_steps, state = run_steps(model, x)
    assert y.shape == x.shape
    torch.testing.assert_close(y_steps, y, rtol=1e-5, atol=1e-5)
    for tensor in state.values():  # fixed shapes, same device as the parameters
        assert isinstance(tensor, torch.Tensor)
    assert {k: v.shape for k, v in state.items()} == {
        k: v.shape for k, v in model.init_state(3).items()
    }


def test_mamba2_paper_size_step_equals_parallel():
    torch.manual_seed(1)
    model = make_sequence_model("mamba2", 512, 2, chunk_size=16).eval()
    x = torch.randn(2, 21, 512)
    with torch.no_grad():
        torch.testing.assert_close(run_steps(model, x)[0], model(x), rtol=1e-5, atol=1e-5)


def test_mamba1_scans_agree_inside_the_model():
    torch.manual_seed(2)
    chunked = make_sequence_model("mamba1", 32, 2).eval()
    sequential = make_sequence_model("mamba1", 32, 2, scan="sequential").eval()
    sequential.load_state_dict(chunked.state_dict())
    x = torch.randn(2, 23, 32)
    with torch.no_grad():
        torch.testing.assert_close(chunked(x), sequential(x), rtol=1e-5, atol=1e-5)


def test_paper_parameter_count_with_drama_stem():
    """Official code: stem + 2-layer Mamba-2 = 3,735,968 + 512 (|A| - 3) parameters; for Boxing
    (18 actions) the official start-up printout says 3,743,648."""
    for n_actions, official in ((3, 3_735_968), (18, 3_743_648)):
        stem = nn.Sequential(nn.Linear(1024 + n_actions, 512), nn.RMSNorm(512), nn.SiLU())
        seq = make_sequence_model("mamba2", 512, 2)
        total = sum(p.numel() for p in stem.parameters()) + sum(p.numel() for p in seq.parameters())
        assert total == official, (n_actions, total)


MAMBA2_NAMES = {  # mamba-ssm 2.3.2.post1 Mamba2 parameters (d_model 512, d_state 16)
    "in_proj.weight": (2096, 512), "conv1d.weight": (1056, 1, 4), "conv1d.bias": (1056,),
    "dt_bias": (16,), "A_log": (16,), "D": (16,), "norm.weight": (1024,),
    "out_proj.weight": (512, 1024),
}
MAMBA1_NAMES = {  # mamba-ssm 2.3.2.post1 Mamba parameters (d_model 512, d_state 16)
    "in_proj.weight": (2048, 512), "conv1d.weight": (1024, 1, 4), "conv1d.bias": (1024,),
    "x_proj.weight": (64, 1024), "dt_proj.weight": (1024, 32), "dt_proj.bias": (1024,),
    "A_log": (1024, 16), "D": (1024,), "out_proj.weight": (512, 1024),
}


@pytest.mark.parametrize("kind,names", [("mamba2", MAMBA2_NAMES), ("mamba1", MAMBA1_NAMES)])
def test_parameter_names_match_mamba_ssm(kind, names):
    model = make_sequence_model(kind, 512, 2)
    mixer = {n: tuple(p.shape) for n, p in model.layers[0].mixer.named_parameters()}
    assert mixer == names
    outside = {n for n, _ in model.named_parameters() if ".mixer." not in n}
    assert outside == {"layers.0.norm.weight", "layers.1.norm.weight", "norm_f.weight"}


def test_paper_defaults_and_initialisation():
    torch.manual_seed(3)
    model = make_sequence_model("mamba2", 512, 2)
    mixer = model.layers[0].mixer
    assert (mixer.nheads, mixer.headdim, mixer.d_state, mixer.chunk_size) == (16, 64, 16, 256)
    A = torch.exp(mixer.A_log)
    assert ((A >= 1) & (A <= 16)).all()
    dt = nn.functional.softplus(mixer.dt_bias)
    assert ((dt >= 1e-3 - 1e-7) & (dt <= 0.1 + 1e-7)).all()
    assert model.dropout.p == 0.1 and model.norm_f.eps == 1e-5
    mamba1 = make_sequence_model("mamba1", 512, 2).layers[0].mixer
    assert mamba1.dt_rank == 32 and mamba1.d_inner == 1024
    assert (nn.functional.softplus(mamba1.dt_proj.bias) <= 0.1 + 1e-7).all()
    tr = make_sequence_model("transformer", 512, 2)
    assert tr.layers[0].w_1.out_features == 1024 and tr.n_heads == 8
    assert OPTIONS["transformer"]["dropout"] == 0.1


@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_training_mode_uses_dropout_and_gradients_reach_every_parameter(kind):
    torch.manual_seed(4)
    model = make_sequence_model(kind, 32, 1, **SMALL[kind]).train()
    x = torch.randn(2, 9, 32)
    y1, y2 = model(x), model(x)
    assert not torch.allclose(y1, y2)  # dropout 0.1 is active in training
    y1.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_unknown_kind_option_and_backend_are_errors():
    with pytest.raises(ValueError, match="'lstm'"):
        make_sequence_model("lstm", 32, 2)
    with pytest.raises(ValueError, match="'d_stat'"):
        make_sequence_model("mamba2", 32, 2, d_stat=16)
    with pytest.raises(ValueError, match="'chunk_size'"):
        make_sequence_model("mamba1", 32, 2, chunk_size=16)
    with pytest.raises(ValueError, match="'cuda'"):
        make_sequence_model("mamba2", 32, 2, backend="cuda")
    with pytest.raises(ValueError, match="mamba2 and mamba1"):
        make_sequence_model("gru", 32, 2, backend="mamba_ssm")
    with pytest.raises(ValueError, match="headdim"):
        make_sequence_model("mamba2", 32, 2, headdim=48)
    with pytest.raises(ValueError, match="scan"):
        make_sequence_model("mamba1", 32, 2, scan="fft")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
@pytest.mark.parametrize("kind", ["mamba2", "mamba1"])
def test_mamba_ssm_backend_without_cuda_says_why(kind):
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        make_sequence_model(kind, 32, 2, backend="mamba_ssm")
    assert not load_mamba_ssm().available(kind)
    assert make_sequence_model(kind, 32, 2, backend="auto").backend == "torch"


def test_mamba_ssm_backend_with_a_cpu_device_is_an_error():
    with pytest.raises(RuntimeError, match="CUDA"):
        make_sequence_model("mamba2", 32, 2, backend="mamba_ssm", device="cpu")
    assert make_sequence_model("mamba2", 32, 2, device="cpu").backend == "torch"


def test_transformer_limits_are_errors():
    model = make_sequence_model("transformer", 32, 1, n_heads=4, max_len=8).eval()
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.randn(1, 9, 32))
    with pytest.raises(ValueError, match="cache_len"):
        model.init_state(1, cache_len=9)
    state = model.init_state(2, cache_len=3)
    for _ in range(3):
        _, state = model.step(torch.randn(2, 32), state)
    with pytest.raises(RuntimeError, match="KV cache length"):
        model.step(torch.randn(2, 32), state)


def test_state_rows_reset_by_zeroing():
    """init_state is all zeros with the batch on dim 0, so zeroing a row restarts it (all kinds)."""
    torch.manual_seed(5)
    for kind in SEQUENCE_KINDS:
        model = make_sequence_model(kind, 32, 2, **SMALL[kind]).eval()
        x = torch.randn(2, 6, 32)
        with torch.no_grad():
            _, state = run_steps(model, x)
            keep = torch.tensor([1, 0])
            state = {k: v * keep.view(-1, *[1] * (v.ndim - 1)).to(v.dtype)
                     for k, v in state.items()}
            y_cont, _ = run_steps(model, x[:, :4], state=state)
            y_fresh, _ = run_steps(model, x[1:, :4])
        torch.testing.assert_close(y_cont[1], y_fresh[0], rtol=1e-5, atol=1e-5)


def test_wrong_state_is_an_error_and_bf16_autocast_keeps_an_fp32_residual():
    model = make_sequence_model("mamba2", 32, 2, headdim=16).eval()
    with pytest.raises(ValueError, match="state keys"):
        model.step(torch.randn(2, 32), {"0.conv": torch.zeros(2, 96, 3)})
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(torch.randn(2, 5, 32))
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
