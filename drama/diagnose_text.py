"""The text form of a drama.diagnose report (``python -m drama.diagnose RUN_DIR`` prints it;
``--json`` writes the dict itself)."""

from __future__ import annotations

from typing import Any


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _hist_str(h: list[int], names: list[str] | None) -> str:
    total = sum(h) or 1
    order = sorted(range(len(h)), key=lambda i: -h[i])
    parts = [f"{names[i] if names else i}:{100 * h[i] / total:.0f}%" for i in order if h[i]]
    return " ".join(parts[:8]) + (" ..." if len(parts) > 8 else "")


def format_report(r: dict[str, Any]) -> str:
    wm, im, rs, rg = r["world_model"], r["imagination"], r["real"]["sampled"], r["real"]["greedy"]
    names = r["action_names"]
    lines = [f"{r['game']} {r['variant']} ({r['preset']}) seed {r['run_seed']}: env step "
             f"{r['env_step']}, {r['updates']['actor_critic']} actor-critic updates, "
             f"{r['num_actions']} actions; {r['settings']}"]

    def section(title, rows):
        lines.append("")
        lines.append(title)
        width = max(len(k) for k, _ in rows)
        lines.extend(f"  {k:<{width}}  {_fmt(v)}" for k, v in rows)

    section(f"1. world model on {wm['windows']} replayed windows x {wm['window_len']} steps "
            f"(replay {wm['replay_size']})", [
                ("real reward / step", wm["real_reward_mean"]),
                ("predicted reward / step", wm["pred_reward_mean"]),
                ("corr(predicted, real reward)", wm["reward_corr"]),
                ("rewarded steps (frac)", f"{wm['rewarded_steps']} ({_fmt(wm['rewarded_frac'])})"),
                ("predicted |r|>0.5 (frac)", wm["pred_rewarded_frac"]),
                ("|error| on rewarded steps", wm["abs_err_rewarded"]),
                ("|error| on unrewarded steps", wm["abs_err_unrewarded"]),
                ("sign hit on rewarded steps", wm["sign_hit_rewarded"]),
                ("|predicted| on rewarded steps", wm["pred_abs_rewarded"]),
                ("|predicted| on unrewarded steps", wm["pred_abs_unrewarded"]),
                ("terminal steps", wm["terminal_steps"]),
                ("termination accuracy", wm["term_accuracy"]),
                ("termination recall", wm["term_recall"]),
                ("termination precision", wm["term_precision"])])
    section(f"2. imagination: {im['starts']} starts x {im['horizon']} steps "
            f"({im['imag_start']} start, {im['return_form']} return)", [
                ("imagined reward / step", im["reward_mean"]),
                ("imagined |r|>0.5 (frac)", im["pred_rewarded_frac"]),
                ("continuation mean", im["cont_mean"]),
                ("lambda-return G mean", im["return_mean"]),
                ("critic V mean (s_0..s_H)", im["value_mean"]),
                ("return scale S (EMA, max 1)", im["return_scale"]),
                ("batch Per95-Per5 of G", im["return_range_batch"]),
                ("|G - V| / max(1, S)", im["advantage_abs"]),
                ("entropy (nats) / max log|A|", f"{_fmt(im['entropy'])} / "
                                               f"{_fmt(im['entropy_max'])}"),
                ("entropy coef x entropy", im["entropy_coef"] * (im["entropy"] or 0.0)),
                ("mean max action prob", im["max_prob_mean"]),
                ("|grad| policy term", im["grad_norm_policy"]),
                ("|grad| entropy term", im["grad_norm_entropy"]),
                ("greedy actions", _hist_str(im["greedy_hist"], names)),
                ("sampled actions", _hist_str(im["sampled_hist"], names))])
    for title, rr in (("3a. real game, sampled actions (training)", rs),
                      ("3b. real game, greedy actions (evaluation)", rg)):
        section(f"{title}: {len(rr['episodes'])} episodes, {rr['steps']} steps "
                f"(cap {rr['max_steps']})", [
                    ("episode returns", ", ".join(
                        f"{e['return']:g}{'*' if e['capped'] else ''}" for e in rr["episodes"])
                     + "  (* capped)"),
                    ("real reward / step", rr["reward_mean"]),
                    ("imagined reward / step", im["reward_mean"]),
                    ("rewarded steps (frac)", rr["rewarded_frac"]),
                    ("critic V(s) mean", rr["value_mean"]),
                    ("discounted real return mean", rr["disc_return_mean"]),
                    ("critic fixed point on real rewards", rr["matched_return_mean"]),
                    ("corr(V, discounted return)", rr["value_return_corr"]),
                    ("|V - fixed point|", rr["value_abs_err"]),
                    ("entropy (nats)", rr["entropy"]),
                    ("mean max action prob", rr["max_prob_mean"]),
                    ("actions taken", _hist_str(rr["action_hist"], names))])
    return "\n".join(lines)
