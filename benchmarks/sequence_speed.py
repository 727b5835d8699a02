"""Sequence-model speed: fwd+bwd milliseconds and peak memory per kind, backend and length.

    python benchmarks/sequence_speed.py                          # CPU: L 64 256, B 16, d 512
    python benchmarks/sequence_speed.py --device cuda --csv results/bench/sequence_speed.csv

One `make_sequence_model(kind, d_model, layers)` in training mode (dropout on), input
(batch, L, d_model), loss y.sum(); the median of `--repeats` timed fwd+bwd passes after
`--warmup` untimed ones. `encoder_layer` is the CPU reference point of issue 3:
`nn.TransformerEncoderLayer(d_model, 8, batch_first=True)` (PyTorch defaults: feed-forward 2048,
no causal mask) on the same input.

peak_mem_mb: memory the fwd+bwd passes needed above what the model and input already held:
CUDA `max_memory_allocated` minus the allocation before the first pass; CPU the growth of the
process's peak resident set (each configuration runs in a fresh subprocess on CPU, so peaks do not
carry over). CUDA runs use bf16 autocast unless `--dtype fp32`.
Columns of --csv: kind, backend, device, batch, length, d_model, layers, ms_fwd_bwd, peak_mem_mb,
dtype, cpu_ms_fwd_bwd, status (ok | oom | error: message). cpu_ms_fwd_bwd is the process's CPU
time per pass (all threads): on a shared CPU machine it is steadier than wall time (ms_fwd_bwd).
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from drama.sequence import SEQUENCE_KINDS, load_mamba_ssm, make_sequence_model  # noqa: E402

KINDS = (*SEQUENCE_KINDS, "encoder_layer")
COLUMNS = ("kind", "backend", "device", "batch", "length", "d_model", "layers", "ms_fwd_bwd",
           "peak_mem_mb", "dtype", "cpu_ms_fwd_bwd", "status")


def build(kind: str, backend: str, d_model: int, layers: int, length: int) -> nn.Module:
    if kind == "encoder_layer":
        return nn.TransformerEncoderLayer(d_model, 8, batch_first=True)
    options = {"max_len": length} if kind == "transformer" else {}
    return make_sequence_model(kind, d_model, layers, backend=backend, **options)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(cfg: dict) -> dict:
    """Time one configuration in this process."""
    device = torch.device(cfg["device"])
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build(cfg["kind"], cfg["backend"], cfg["d_model"], cfg["layers"], cfg["length"])
    model = model.to(device).train()
    x = torch.randn(cfg["batch"], cfg["length"], cfg["d_model"], device=device)
    dtype = torch.bfloat16 if cfg["dtype"] == "bf16" else None

    def fwd_bwd():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            y = model(x)
        y.float().sum().backward()

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = maxrss_mb()
    times, cpu_times = [], []
    for i in range(cfg["warmup"] + cfg["repeats"]):
        start, cpu_start = time.perf_counter(), time.process_time()
        fwd_bwd()
        if cuda:
            torch.cuda.synchronize()
        if i >= cfg["warmup"]:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        model.zero_grad(set_to_none=True)
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak = maxrss_mb() - before
    backend = getattr(model, "backend", "torch")
    return {**cfg, "backend": backend, "ms_fwd_bwd": round(1e3 * statistics.median(times), 2),
            "cpu_ms_fwd_bwd": round(1e3 * statistics.median(cpu_times), 2),
            "peak_mem_mb": round(peak, 1), "status": "ok"}


def measure_guarded(cfg: dict) -> dict:
    try:
        return measure(cfg)
    except torch.cuda.OutOfMemoryError:
        status = "oom"
    except (RuntimeError, MemoryError) as err:
        status = "oom" if "out of memory" in str(err).lower() else f"error: {err}"[:200]
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {**cfg, "ms_fwd_bwd": float("nan"), "cpu_ms_fwd_bwd": float("nan"),
            "peak_mem_mb": float("nan"), "status": status}


def measure_isolated(cfg: dict) -> dict:
    """Run one configuration in a fresh Python process (CPU peak memory per configuration)."""
    proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        status = "oom" if proc.returncode in (-9, 137) else f"error: {msg}"[:200]
        return {**cfg, "ms_fwd_bwd": float("nan"), "cpu_ms_fwd_bwd": float("nan"),
                "peak_mem_mb": float("nan"), "status": status}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def configs(args) -> list[dict]:
    out = []
    for length in args.lengths:
        for kind in args.kinds:
            backends = ["torch"]
            if kind in ("mamba2", "mamba1") and args.device == "cuda":
                if load_mamba_ssm().available(kind):
                    backends.append("mamba_ssm")
                else:
                    print(f"# {kind} mamba_ssm skipped: {load_mamba_ssm().reasons[kind]}")
            for backend in backends:
                out.append({"kind": kind, "backend": backend, "device": args.device,
                            "batch": args.batch, "length": length, "d_model": args.d_model,
                            "layers": args.layers, "dtype": args.dtype, "warmup": args.warmup,
                            "repeats": args.repeats})
    return out


def main(argv=None):
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--lengths", nargs="+", type=int,
                   default=[64, 256, 1024, 4096, 16384] if cuda else [64, 256])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--device", default="cuda" if cuda else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default=None, choices=["fp32", "bf16"],
                   help="default: bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=None, help="default: 20 CUDA, 5 CPU")
    p.add_argument("--no-isolate", action="store_true",
                   help="CPU: run every configuration in this process (no peak memory per config)")
    p.add_argument("--csv", type=Path, default=None, help="also write the rows to this CSV")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one config, JSON
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure_guarded(json.loads(args.one))))
        return
    if args.device == "cuda" and not cuda:
        p.error("--device cuda but torch.cuda.is_available() is False")
    args.dtype = args.dtype or ("bf16" if args.device == "cuda" else "fp32")
    args.repeats = args.repeats or (20 if args.device == "cuda" else 5)
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
    else:
        name = f"CPU, {torch.get_num_threads()} torch threads"
    print(f"# {name}; torch {torch.__version__}; batch {args.batch}, d_model {args.d_model}, "
          f"layers {args.layers}, {args.dtype}; median of {args.repeats}")
    print(f"{'kind':<14}{'backend':<11}{'L':>7}{'fwd+bwd ms':>13}{'CPU ms':>10}{'peak MB':>10}"
          "  status")
    rows = []
    isolate = args.device == "cpu" and not args.no_isolate
    for cfg in configs(args):
        row = measure_isolated(cfg) if isolate else measure_guarded(cfg)
        rows.append(row)
        print(f"{row['kind']:<14}{row['backend']:<11}{row['length']:>7}{row['ms_fwd_bwd']:>13.1f}"
              f"{row['cpu_ms_fwd_bwd']:>10.0f}{row['peak_mem_mb']:>10.0f}  {row['status']}",
              flush=True)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        print(f"# wrote {args.csv}")


if __name__ == "__main__":
    main()
