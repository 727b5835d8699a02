"""Parameter counts of a configured agent: ``python -m drama.describe --game Pong --json``.

Builds the world model and the actor-critic exactly as ``drama.train`` would (same presets,
variants and ``--set`` overrides; the action count comes from the game's minimal action set)
and prints the parameter count of every component. ``world_model`` is the paper's
"7 million-parameter world model" figure; ``agent_total`` adds the actor and critic (the slow
critic is a copy of the critic and is listed separately, not counted in ``agent_total``).
"""

from __future__ import annotations

import argparse
import json
import sys

from drama.config import RunConfig, resolve_config
from drama.run import build_agent


def num_actions_for(game: str, env_overrides: dict | None = None) -> int:
    from drama.envs import make_env

    env = make_env(game, 0, **(env_overrides or {}))
    try:
        return int(env.action_space.n)
    finally:
        env.close()


def describe(cfg: RunConfig, num_actions: int) -> dict:
    """Parameter counts and the sequence backend of the agent ``cfg`` describes."""
    wm, ac = build_agent(cfg, num_actions)
    w = cfg.world_model
    params = dict(wm.parameter_counts())
    params.update(ac.parameter_counts())
    params["agent_total"] = params["world_model"] + params["actor"] + params["critic"]
    return {"game": cfg.game, "variant": cfg.variant, "preset": cfg.preset,
            "num_actions": num_actions, "sequence_kind": w.sequence_kind,
            "sequence_backend": getattr(wm.sequence, "backend", None), "params": params}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m drama.describe", description=__doc__.split("\n")[0])
    p.add_argument("--game", required=True)
    p.add_argument("--variant", default="drama")
    p.add_argument("--preset", default="atari100k")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    try:
        cfg = resolve_config(args.game, 0, args.variant, args.preset, args.set, device="cpu")
        out = describe(cfg, num_actions_for(args.game, cfg.env))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{out['game']} ({out['num_actions']} actions), variant {out['variant']}, "
              f"preset {out['preset']}, sequence {out['sequence_kind']} "
              f"[{out['sequence_backend']}]")
        for name, n in out["params"].items():
            print(f"  {name:<18} {n:>12,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
