"""train.compile: the compiled updates equal the eager ones on the CPU, with zero graph breaks.

Tolerances: the compiled (inductor C++) kernels fuse and reorder float32 arithmetic, so the
compiled update agrees with the eager one to float32 rounding, not bit for bit: metrics within
rtol 1e-4 / atol 1e-5 over 3 updates (details in the test). The latent samples are the same
draws (eager generator, fallback_random), which the tight loss tolerance checks. Compile time on
the 2-core CPU is printed (``-s``). Exact resume with compile on: tests/test_train.py.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch

from drama.agent import ActorCritic
from drama.compile import compile_enabled, install_compiled_updates
from drama.config import resolve_config
from drama.world_model import WorldModel

LOSS_TOL = dict(rtol=1e-4, atol=1e-5)


def test_setting_resolution_and_bad_value():
    assert compile_enabled("auto", "cuda") and not compile_enabled("auto", "cpu")
    assert compile_enabled("on", "cpu") and not compile_enabled("off", "cuda")
    with pytest.raises(ValueError, match="train.compile"):
        compile_enabled("yes", "cpu")
    with pytest.raises(ValueError, match="train.compile"):
        resolve_config("Pong", 0, "drama", "debug", ["train.compile=fast"])
    assert resolve_config("Pong", 0, "drama", "debug").train.compile == "auto"


def _biases_before_batchnorm(model: torch.nn.Module) -> set[str]:
    """Names of biases of layers directly followed by a BatchNorm: their gradient is zero up
    to rounding (the norm removes any constant shift), so eager and compiled gradients of these
    are unrelated rounding noise; they are left out of the gradient comparison."""
    names = set()
    for prefix, mod in model.named_modules():
        if isinstance(mod, torch.nn.Sequential):
            kids = list(mod.named_children())
            for (n1, m1), (_, m2) in zip(kids, kids[1:], strict=False):
                if isinstance(m2, torch.nn.modules.batchnorm._BatchNorm) and \
                        getattr(m1, "bias", None) is not None:
                    names.add(f"{prefix}.{n1}.bias" if prefix else f"{n1}.bias")
    return names


def _wm_batch(B, T, A, seed):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randint(0, 256, (B, T, 64, 64, 3), dtype=torch.uint8, generator=g),
            "action": torch.randint(0, A, (B, T), generator=g),
            "reward": torch.randn(B, T, generator=g),
            "termination": (torch.rand(B, T, generator=g) < 0.2).float(),
            "is_first": torch.zeros(B, T, dtype=torch.bool)}


def _traj(feat_dim, A, B, H, seed):
    g = torch.Generator().manual_seed(seed)
    return {"feat": torch.randn(B, H + 1, feat_dim, generator=g),
            "action": torch.randint(0, A, (B, H), generator=g),
            "reward": torch.randn(B, H, generator=g),
            "cont": (torch.rand(B, H, generator=g) > 0.1).float()}


DEBUG = resolve_config("Boxing", 0, "drama", "debug")


def _debug_models() -> tuple[WorldModel, ActorCritic]:
    """The debug preset's world model and actor-critic with 3 actions: ColourMatch's shapes, so
    the exact-resume test (tests/test_train.py, with compile on) and the second test here hit
    inductor's on-disk cache of the graphs the first test compiles."""
    w = DEBUG.world_model
    return WorldModel(w, 3), ActorCritic(DEBUG.actor_critic, w.stoch * w.classes + w.d_model, 3)


@pytest.mark.slow
def test_compiled_updates_equal_eager_with_zero_graph_breaks(capsys):
    """3 world-model + actor-critic updates at the debug preset's sizes, eager vs compiled:
    the same metrics (losses, entropies, grad norms) within LOSS_TOL at every update, the same
    gradients at the first update (each tensor within 1e-3 relative error in norm: the sums over
    64 x 64 positions of the first conv reorder; biases before a BatchNorm, whose gradient is
    pure rounding noise, excepted), and parameters within 2 LaProp
    steps (2 lr) after 3 updates: LaProp divides each gradient by its own running RMS, so a
    coordinate whose gradient is rounding noise (e.g. the biases before BatchNorm) moves by
    +-lr either way; real differences would show up in the losses."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    cfg = DEBUG
    torch.manual_seed(0)
    wcfg = cfg.world_model
    wm, ac = _debug_models()
    wm2, ac2 = copy.deepcopy(wm), copy.deepcopy(ac)
    info = install_compiled_updates(wm2, ac2, "on", torch.device("cpu"))
    assert info["enabled"] and info["fullgraph"]
    for k in range(3):
        batch, traj = _wm_batch(4, 16, 3, seed=k), _traj(ac.feat_dim, 3, 32, 8, seed=k)
        results = []
        for w, a in ((wm, ac), (wm2, ac2)):
            torch.manual_seed(100 + k)  # the same latent draws in both
            t = time.time()
            results.append((w.update(batch), a.update(traj), time.time() - t))
        (ew, ea, _), (cw, ca, took) = results
        if k == 0:
            with capsys.disabled():
                print(f"\n[compile] first compiled WM+AC update on CPU (incl. compile): "
                      f"{took:.1f} s")
            noise = _biases_before_batchnorm(wm)
            assert noise, "expected conv biases before BatchNorm in the world model"
            for model, copy_ in ((wm, wm2), (ac, ac2)):
                for (n, p), q in zip(model.named_parameters(), copy_.parameters(), strict=True):
                    if p.grad is not None and n not in noise:
                        err = (q.grad - p.grad).norm() / p.grad.norm().clamp(min=1e-12)
                        assert err < 1e-3, (n, float(err))
        assert cw.keys() == ew.keys() and ca.keys() == ea.keys()
        for key in ew:
            torch.testing.assert_close(cw[key], ew[key], **LOSS_TOL, msg=f"wm {key} update {k}")
        for key in ea:
            torch.testing.assert_close(ca[key], ea[key], **LOSS_TOL, msg=f"ac {key} update {k}")
    assert dict(torch._dynamo.utils.counters["graph_break"]) == {}
    for model, copy_, lr in ((wm, wm2, wcfg.lr), (ac, ac2, cfg.actor_critic.lr)):
        for (n, p), q in zip(model.named_parameters(), copy_.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=0, atol=2 * lr, msg=n)
        for (n, b), c in zip(model.named_buffers(), copy_.buffers(), strict=True):
            torch.testing.assert_close(c.float(), b.float(), rtol=1e-3, atol=1e-4, msg=n)


@pytest.mark.slow
def test_compiled_update_skips_a_non_finite_step():
    """A NaN loss (poisoned reward) leaves the world model and its optimiser untouched, and the
    next finite update proceeds."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    wm, ac = _debug_models()  # the graphs of the test above: inductor's cache compiles them
    install_compiled_updates(wm, ac, "on", torch.device("cpu"))
    wm.update(_wm_batch(4, 16, 3, seed=0))
    before = copy.deepcopy((wm.state_dict(), wm.optimizer.state_dict()))
    bad = _wm_batch(4, 16, 3, seed=1)
    bad["reward"][0, 0] = float("nan")
    metrics = wm.update(bad)
    assert not torch.isfinite(metrics["loss/total"]) and not bool(wm.update.last_finite)
    # parameters and optimiser state unchanged (the forward pass itself still updates the
    # BatchNorm running statistics, as in the eager update and the official skipped step)
    for k, v in wm.named_parameters():
        torch.testing.assert_close(v.detach(), before[0][k], rtol=0, atol=0, msg=k)
    after = wm.optimizer.state_dict()["state"]
    for i, st in before[1]["state"].items():
        for k, v in st.items():
            torch.testing.assert_close(after[i][k], v, rtol=0, atol=0)
    assert bool(wm.update.last_finite) is False
    wm.update(_wm_batch(4, 16, 3, seed=2))
    assert bool(wm.update.last_finite) is True
    assert not torch.equal(wm.prior_head.weight, before[0]["prior_head.weight"])
