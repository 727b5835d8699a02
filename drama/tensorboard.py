"""Optional TensorBoard sink of a run (`train.tensorboard: true`, `drama.train --tensorboard`).

Every row :class:`drama.run_io.MetricsWriter` appends to ``metrics.jsonl`` is also written as
TensorBoard scalars, same names and same steps (non-finite values as NaN/Inf), plus the
returns of each evaluation as a histogram (``eval/returns``, ``eval_final/returns``), the
resolved config as text (``config``) and, with ``train.openloop``, the open-loop strip as an
image (``openloop/strip``). The event files go into the run directory itself, so
``tensorboard --logdir results/runs`` names each run by its path below the log directory,
e.g. ``debug/Pong/drama/seed0`` (settings / game / variant / seed).

``metrics.jsonl`` stays the record the harness reads; the events are a view of it. On resume a
new event file starts with ``purge_step`` = the checkpoint's step + 1, so TensorBoard hides what
the killed process wrote after that checkpoint (as ``metrics.jsonl`` is truncated back to it).

TensorBoard is an optional dependency (``pip install -e ".[tensorboard]"``); asking for the
sink without it is a :class:`ValueError` with one line saying so, raised before the run writes
anything. Runs that do not ask never import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = 'pip install -e ".[tensorboard]"'


def require_tensorboard() -> None:
    """A ValueError (one line) when the ``tensorboard`` package cannot be imported."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as e:
        raise ValueError(f"train.tensorboard=true needs the tensorboard package, which is not "
                         f"installed ({type(e).__name__}: {' '.join(str(e).split())}); "
                         f"install it with {INSTALL_HINT} or drop the setting") from None


class TensorBoardSink:
    """Writes scalars, histograms, images and text into ``log_dir`` (the run directory)."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        # flush_secs: events reach the disk at least every 30 s while the run trains
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step, flush_secs=30)

    def scalars(self, step: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            self.writer.add_scalar(key, float(value), int(step))

    def histogram(self, tag: str, values, step: int) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.size:
            self.writer.add_histogram(tag, values, int(step))

    def image(self, tag: str, image_hwc: np.ndarray, step: int) -> None:
        """An RGB uint8 image (H, W, 3)."""
        self.writer.add_image(tag, np.asarray(image_hwc), int(step), dataformats="HWC")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, int(step))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_run_sink(out: str | Path, step: int, config: dict[str, Any]) -> TensorBoardSink:
    """The trainer's sink (train.tensorboard), the run's config as its first text. purge_step:
    TensorBoard hides what an earlier process logged after the step resumed from."""
    import yaml

    sink = TensorBoardSink(out, purge_step=step + 1)
    sink.text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "```", step)
    return sink


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in ``log_dir`` as {tag: [(step, value), ...]} with TensorBoard's own
    reader (EventAccumulator, orphaned data purged as TensorBoard shows it)."""
    require_tensorboard()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
