"""Forward+backward time of the world model's conv encoder and decoder on the CPU, NCHW against
channels-last (NHWC), at one thread: why both run channels-last on the CPU (drama/networks.py).

    python tools/investigations/conv_layout.py [--batch 512] [--depth 4] [--latent 256] \
        [--repeats 3]
    python tools/investigations/conv_layout.py --batch 64 --per-layer      # where the time goes

Prints one JSON line: ms per forward+backward of each module in each layout and the speed-ups.
``--per-layer`` also prints one line per layer (conv, BatchNorm, SiLU) of the encoder and the
decoder: its output shape and forward+backward ms in each layout (the gradient of the layer's
input is computed except for the encoder's first layer, whose input is the frames, as in the
world model).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from drama.networks import Decoder, Encoder


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=512, help="frames (cpu preset: 16 x 32)")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--latent", type=int, default=256, help="decoder input width")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--per-layer", action="store_true", help="also time each layer")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    enc = Encoder(depth=args.depth)
    dec = Decoder(args.latent, enc.feature_shape, depth=args.depth)
    x = torch.rand(args.batch, 3, 64, 64)
    z = torch.randn(args.batch, args.latent)

    def encoder(layout):
        return lambda: enc.net(x.contiguous(memory_format=layout)).sum().backward()

    def decoder(layout):
        def f():
            h = dec.stem(z).reshape(args.batch, *dec.feature_shape).contiguous(memory_format=layout)
            torch.sigmoid(dec.net(dec.stem_norm(h))).sum().backward()
        return f

    out = {"batch": args.batch, "depth": args.depth, "threads": args.threads}
    for name, make in (("encoder", encoder), ("decoder", decoder)):
        nchw = _time(make(torch.contiguous_format), args.repeats)
        nhwc = _time(make(torch.channels_last), args.repeats)
        out[name] = {"nchw_ms": round(nchw, 1), "channels_last_ms": round(nhwc, 1),
                     "speedup": round(nchw / nhwc, 2)}
    print(json.dumps(out), flush=True)
    if args.per_layer:
        h = dec.stem(z).reshape(args.batch, *dec.feature_shape)
        for name, layers, inp in (("encoder", list(enc.net), x),
                                  ("decoder", [*dec.stem_norm, *dec.net], h)):
            for i, layer in enumerate(layers):
                row = {"module": name, "layer": i, "kind": type(layer).__name__}
                for key, layout in (("nchw_ms", torch.contiguous_format),
                                    ("channels_last_ms", torch.channels_last)):
                    xi = inp.detach().contiguous(memory_format=layout)
                    xi.requires_grad_(not (name == "encoder" and i == 0))

                    def f(layer=layer, xi=xi):
                        y = layer(xi)
                        y.backward(torch.ones_like(y))
                    row[key] = round(_time(f, args.repeats), 2)
                with torch.no_grad():
                    inp = layer(inp)
                row["out_shape"] = list(inp.shape)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
