"""``train.compile``: the world-model and actor-critic updates under ``torch.compile``.

Setting (``train.compile``, recorded in run_info.json under ``compile``):
    auto  on for CUDA, off on the CPU (at the debug preset on this project's 2-core CPU machine,
          compiling did not pay for runs of a few thousand updates: benchmarks/train_loop.py
          ``--set train.compile=on``, numbers in docs/performance.md)
    on    compile on any device (CPU: inductor C++ kernels, needs a C++ compiler)
    off   the models' own eager ``update`` methods, untouched

What is compiled (the models' code is wrapped, not rewritten): one update is
    zero_grad; [autocast] loss = Model.loss(batch); loss.backward();
    grad_norm = clip_grad_norm_(params, clip); finite = isfinite(loss) & isfinite(grad_norm);
    optimizer.step(finite=finite); [actor-critic: slow-critic EMA]
i.e. exactly ``WorldModel.update`` / ``ActorCritic.update`` (a test checks compiled against the
eager methods step by step). ``Model.loss`` is compiled with ``fullgraph=True`` (AOTAutograd
also compiles its backward), the clip + optimiser step (+ slow critic) is a second
``fullgraph=True`` region; ``fullgraph=True`` makes any graph break an error, so a run that
starts has zero graph breaks. ``loss.backward()`` itself runs between the two regions (the
compiled backward graph). On CUDA both use ``mode="reduce-overhead"`` (CUDA graphs); outputs
of a captured graph are overwritten by its next replay, so the metrics are cloned.

The non-finite check is a device flag: a non-finite loss or gradient norm skips the optimiser
step (nothing changes, see ``LaProp.step``) without a host synchronisation; like the eager
update, the metrics carry it as ``finite`` (the trainer counts skipped updates). Random draws
inside the compiled loss (the latent samples) use the eager generator
(``torch._inductor.config.fallback_random``), so compiled and eager runs draw the same numbers
from the same, checkpointed RNG state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

SETTINGS = ("auto", "on", "off")


def compile_enabled(setting: str, device: torch.device | str) -> bool:
    """Resolve ``train.compile`` for a device."""
    if setting not in SETTINGS:
        raise ValueError(f"train.compile must be one of {', '.join(SETTINGS)}, got {setting!r}")
    if setting == "auto":
        return torch.device(device).type == "cuda"
    return setting == "on"


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class CompiledUpdate:
    """One model's update: ``loss_fn`` under torch.compile, backward, then a compiled
    clip + ``optimizer.step(finite=...)`` (+ ``after_step``). Calling it returns the detached
    0-d metrics of the eager ``update`` (``grad_norm`` included)."""

    def __init__(self, module: nn.Module, loss_fn: Callable[[Any], tuple[Tensor, dict]],
                 optimizer: torch.optim.Optimizer, params: list[nn.Parameter], clip: float,
                 amp: bool, after_step: Callable[[], None] | None, device: torch.device):
        self.module, self.optimizer, self.params = module, optimizer, params
        self.clip, self.amp, self.after_step, self.device = float(clip), amp, after_step, device
        self.cuda_graphs = device.type == "cuda"
        mode = "reduce-overhead" if self.cuda_graphs else None
        self._loss = torch.compile(loss_fn, fullgraph=True, dynamic=False, mode=mode)
        self._step = torch.compile(self._clip_and_step, fullgraph=True, dynamic=False, mode=mode)
        if hasattr(optimizer, "init_state"):
            optimizer.init_state()  # state exists before tracing: the step only reads it

    def _clip_and_step(self, total: Tensor) -> tuple[Tensor, Tensor]:
        grad_norm = nn.utils.clip_grad_norm_(self.params, self.clip)
        finite = torch.isfinite(total) & torch.isfinite(grad_norm)
        self.optimizer.step(finite=finite)
        if self.after_step is not None:
            self.after_step()
        return grad_norm.detach(), finite

    def _mark_static(self) -> None:
        """CUDA graphs: the optimiser state (mutated by the step) at fixed addresses, as torch's
        own optimisers do; done at the first update, after any checkpoint restore replaced the
        state tensors."""
        for state in self.optimizer.state.values():
            for v in state.values():
                if isinstance(v, Tensor):
                    torch._dynamo.mark_static_address(v)
        self._marked = True

    def __call__(self, batch: Any) -> dict[str, Tensor]:
        if self.cuda_graphs and not getattr(self, "_marked", False):
            self._mark_static()
        self.module.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with _autocast(self.device, self.amp):
            total, metrics = self._loss(batch)
        total.backward()
        grad_norm, finite = self._step(total.detach())
        out = {k: v.detach() for k, v in metrics.items()}
        out["grad_norm"] = grad_norm
        out["finite"] = finite  # as the eager update: False = the step was skipped
        if self.cuda_graphs:  # the next replay reuses the graphs' output memory
            out = {k: v.clone() for k, v in out.items()}
        self.last_finite = out["finite"]
        return out


def install_compiled_updates(wm: nn.Module, ac: nn.Module, setting: str,
                             device: torch.device) -> dict[str, Any]:
    """With ``train.compile`` on (resolved for ``device``), replace ``wm.update`` and
    ``ac.update`` on these instances by compiled updates; returns the run_info record."""
    device = torch.device(device)
    enabled = compile_enabled(setting, device)
    info: dict[str, Any] = {"setting": setting, "enabled": enabled,
                            "mode": None, "fullgraph": None}
    if not enabled:
        return info
    # latent samples from the eager generator: same draws as eager, same checkpointed RNG
    torch._inductor.config.fallback_random = True
    amp = bool(getattr(wm.cfg, "amp", True))
    wm.update = CompiledUpdate(wm, wm.loss, wm.optimizer, list(wm.parameters()),
                               wm.cfg.grad_clip, amp, None, device)
    ac_params = [p for g in ac.optimizer.param_groups for p in g["params"]]
    ac.update = CompiledUpdate(ac, ac.loss, ac.optimizer, ac_params, ac.cfg.grad_clip, True,
                               ac.update_slow_critic, device)
    info.update(mode="reduce-overhead" if device.type == "cuda" else "default", fullgraph=True,
                torch=torch.__version__)
    return info
