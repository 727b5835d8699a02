"""Milliseconds per world-model update at the paper's configuration (batch 16 x 128 steps).

    python benchmarks/world_model_update.py [--device cpu|cuda] [--updates 3] [--batch 16]
        [--seq-len 128] [--game Pong] [--kind mamba2] [--backend auto] [--threads 0]

One update = replay sample (DFS, uint8 frames on the device) + ``WorldModel.update`` (forward,
backward, clip, LaProp step, warm-up step). The replay holds random frames (the cost does not
depend on their content). CUDA runs use bf16 autocast (the model's default) and synchronise
before reading the clock. Prints the parameter count, device, backend and the median time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from drama.replay import ReplayBuffer, ReplayConfig
from drama.world_model import WorldModel, WorldModelConfig

NUM_ACTIONS = {"Pong": 6, "Breakout": 4, "Boxing": 18}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--updates", type=int, default=3, help="timed updates (after 1 warm-up)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--game", default="Pong", choices=sorted(NUM_ACTIONS))
    ap.add_argument("--kind", default="mamba2", help="sequence model kind")
    ap.add_argument("--backend", default="auto", help="sequence backend")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--buffer", type=int, default=5000, help="transitions in the replay")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    cfg = WorldModelConfig(sequence_kind=args.kind, sequence_backend=args.backend)
    wm = WorldModel(cfg, NUM_ACTIONS[args.game]).to(device)
    rb = ReplayBuffer(ReplayConfig(capacity=args.buffer), device=device, seed=0)
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (args.buffer, 64, 64, 3), dtype=torch.uint8, generator=gen)
    for i in range(args.buffer):
        rb.add(frames[i], i % NUM_ACTIONS[args.game], float(i % 50 == 0), i % 400 == 399,
               i % 400 == 0)  # fmt: skip

    def one_update() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        metrics = wm.update(rb.sample_world_model(args.batch, args.seq_len))
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        assert torch.isfinite(metrics["loss/total"]), metrics
        return dt

    one_update()  # warm-up (allocations, kernel selection)
    times = [one_update() for _ in range(args.updates)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"world model: {wm.parameter_counts()['world_model']:,} parameters, "
          f"sequence {args.kind} (backend {wm.sequence.backend}), {args.game}")  # fmt: skip
    print(f"device {name}, torch threads {torch.get_num_threads()}, "
          f"amp {'bf16' if cfg.amp and device.type == 'cuda' else 'off (fp32)'}")  # fmt: skip
    print(f"batch {args.batch} x {args.seq_len}: median {1e3 * statistics.median(times):.0f} ms "
          f"per update over {len(times)} updates (min {1e3 * min(times):.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
