"""Time DFS draws from a full replay buffer (target: 1,024 imagination starts at N = 100,000
in under 10 ms on CPU).

    python benchmarks/replay_sampling.py [--capacity 100000] [--device cpu] [--threads 1]

Prints the median milliseconds of: drawing 1,024 imagination starts (DFS scores, Gumbel-top-k,
counter update), drawing 16 world-model starts, and full batches including the uint8 frame
gather (1,024 x 8 and 16 x 128 frames). The buffer is filled with distinct frames and an
episode reset every 1,000 steps; counters are pre-set to look like a long run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from drama.replay import ReplayBuffer, ReplayConfig


def timed(fn, repeats: int, device: torch.device) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capacity", type=int, default=100_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--sampling", default="dfs", choices=("dfs", "uniform"))
    ap.add_argument("--episode-len", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rb = ReplayBuffer(ReplayConfig(capacity=args.capacity, sampling=args.sampling,
                                   img_count_scale=1024 / 16), device=device)
    n = args.capacity
    # Fill the buffer through load_state_dict, as a resumed run does (add() one by one would
    # take a minute at N = 100,000).
    gen = torch.Generator().manual_seed(0)
    firsts = torch.arange(n) % args.episode_len == 0
    state = rb.state_dict()
    state.update(size=n, ptr=0,
                 obs=torch.randint(0, 256, rb.obs.shape, dtype=torch.uint8, generator=gen),
                 action=torch.randint(0, 6, (n,), generator=gen),
                 reward=(torch.rand(n, generator=gen) < 0.01).float(), is_first=firsts,
                 termination=torch.roll(firsts, -1).float(),
                 wm_count=torch.randint(0, 40, (n,), dtype=torch.int32, generator=gen),
                 img_count=torch.randint(0, 2000, (n,), dtype=torch.int32, generator=gen))
    rb.load_state_dict(state)

    threads = torch.get_num_threads()
    print(f"replay sampling, N={n}, device={device}, sampling={args.sampling}, "
          f"torch threads={threads}, median of {args.repeats}")  # fmt: skip
    rows = [
        ("draw 1024 imagination starts (L=8)", lambda: rb.draw_starts("imagination", 1024, 8)),
        ("draw 16 world-model starts (L=128)", lambda: rb.draw_starts("world_model", 16, 128)),
        ("sample_imagination(1024, 8) incl. frames", lambda: rb.sample_imagination(1024, 8)),
        ("sample_world_model(16, 128) incl. frames", lambda: rb.sample_world_model(16, 128)),
    ]
    for name, fn in rows:
        print(f"{name:45s} {timed(fn, args.repeats, device):8.2f} ms")


if __name__ == "__main__":
    main()
