"""Acting (training and evaluation) and evaluation episodes.

Two ways to act (``actor_critic.acting``):

``context`` (official ``train.py`` sampling loop + ``WorldModel.calc_last_dist_feat``; the
default), :class:`ContextActor`: the agent keeps the last ``acting_context`` (16) (frame,
action) pairs of the current episode. At env step t it runs the sequence model from a fresh
state over (z_{t-16..t-1}, a_{t-16..t-1}) (posterior samples of those frames), takes the last
output d = d_{t-1}, samples z ~ prior(d) (its prediction of the current frame) and acts on
concat(z, d): it never looks at the current frame o_t, which enters the context only after
acting (together with a_t). With an empty context (the first step of every episode, and the
first step after the random warm-up) the action is uniformly random. Per-frame encodings are
cached: each step encodes only the newest frame, whose posterior log-probabilities are kept
and re-sampled at every step as the official code re-samples ``encode_obs`` (deviation: the
official code re-encodes the 16 frames with the current weights at every step; ours encoded
each frame once, with the weights of the step it was seen, at most 15 updates older).

``recurrent`` (our correction; variant ``corrected``), :class:`RecurrentActor`: the actor sees
s_t = concat(z_t, h_t) with z_t sampled from the *posterior* of the current frame and
h_t = d_{t-1}, carrying the recurrent state through the whole episode (one ``wm.step`` per env
step; a fresh state at an episode start, not at a life loss).

Training samples actions, evaluation takes the argmax (official ``eval.py``; setting
``train.eval_greedy``).

Evaluation episodes run ``len(envs)`` at a time, one batched network call per step, in one of
two ways (``train.eval_context``):

``fresh`` (ours): waves of fresh environments stepped together; finished environments stop
being stepped (their rows are computed and ignored), so no state needs resetting mid-wave and
every row of a wave has the same context length; each episode starts with an empty context.
``carry`` (the release's ``eval.py``, whose vectorised envs restart on their own while its
16-step context deque is never cleared): env slot j plays episodes j, j + n, j + 2n, ...
back to back, and with ``acting=context`` the context of slot j runs on from one episode into
the next (the first action of the whole evaluation is random, later episodes start from the
previous episode's last 16 steps). A slot with no episodes left is computed and ignored.
Episode seeds derive from the run seed, the evaluation's env step and the episode index; the
world model's sampling noise comes from a forked torch RNG seeded the same way, so evaluating
never perturbs training's streams.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from drama.agent import ActorCritic


def derive_seed(*keys: int) -> int:
    """A 31-bit seed determined by ``keys`` (run seed first), via NumPy's SeedSequence."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


class RecurrentActor:
    """``acting=recurrent``: holds (state, h) for a batch of environments; ``act`` picks actions.

    Sequence models with a bounded context (the Transformer: a fixed KV cache and learned
    positions up to ``max_len``) cannot carry their state through an episode of thousands of
    steps. For them the actor keeps the last ``ACT_WINDOW`` inputs (z, a) and, when the cache is
    full, rebuilds the state from those alone (positions restart at 0), as the official code
    re-runs its last 16 frames; between rebuilds the cache grows one step per env step.
    Unbounded models (Mamba-2, Mamba-1, GRU) carry their state through the whole episode.
    """

    ACT_WINDOW = 16  # the official acting context (RealityContextLength)

    def __init__(self, wm, ac: ActorCritic, batch: int, device: torch.device):
        self.wm, self.ac, self.device = wm, ac, device
        max_len = getattr(wm.sequence, "max_len", None) if hasattr(wm, "sequence") else None
        self.limit = None if max_len is None else int(max_len)  # steps a state can hold
        if self.limit is not None and self.limit <= self.ACT_WINDOW:
            raise ValueError(f"sequence max_len={self.limit} must exceed {self.ACT_WINDOW}")
        self.reset(batch)

    def reset(self, batch: int) -> None:
        self.state = self.wm.init_state(batch)
        self.h = torch.zeros(batch, self.wm.cfg.d_model, device=self.device)
        self.steps = 0  # steps held by ``state`` (host counter: all rows step together)
        self.last_feat: Tensor | None = None
        self.history: list[tuple[Tensor, Tensor]] = []  # last ACT_WINDOW (z, a), bounded only

    def state_dict(self) -> dict:
        return {"kind": "recurrent", "state": self.state, "h": self.h, "steps": self.steps,
                "history": self.history}

    def load_state_dict(self, sd: dict) -> None:
        if sd.get("kind", "recurrent") != "recurrent":
            raise ValueError("checkpoint holds a different acting state (actor_critic.acting)")
        to_dev = lambda t: t.to(self.device) if isinstance(t, Tensor) else t  # noqa: E731
        self.state = torch.utils._pytree.tree_map(to_dev, sd["state"])
        self.h = sd["h"].to(self.device)
        self.steps = int(sd.get("steps", 0))
        self.history = [(z.to(self.device), a.to(self.device)) for z, a in sd.get("history", [])]

    @torch.no_grad()
    def act(self, obs: np.ndarray, greedy: bool = False, policy: bool = True,
            random_actions: np.ndarray | None = None) -> np.ndarray:
        """Actions (B,) for frames ``obs`` (B, 64, 64, 3) uint8; advances the recurrent state.

        With ``policy=False`` the given ``random_actions`` are taken (the random warm-up) but
        the state is still advanced, so the policy later starts from a real context.
        """
        assert obs.ndim == 4 and obs.dtype == np.uint8, (obs.shape, obs.dtype)
        frames = torch.from_numpy(obs).to(self.device)
        z = self.wm.sample(self.wm.encode(frames))  # (B, S*K), posterior sample
        if policy:
            feat = torch.cat([z, self.h], dim=-1)  # (B, F)
            self.last_feat = feat  # for drama.diagnose
            action = self.ac.act(feat, greedy=greedy)  # (B,)
        else:
            action = torch.as_tensor(random_actions, dtype=torch.long, device=self.device)
        if self.limit is not None and self.steps >= self.limit:
            self.state = self.wm.init_state(z.shape[0])  # rebuild from the window alone
            for z_i, a_i in self.history:
                _, self.state = self.wm.step(z_i, a_i, self.state)
            self.steps = len(self.history)
        self.h, self.state = self.wm.step(z, action, self.state)  # d_t: (B, D)
        self.steps += 1
        if self.limit is not None:
            self.history = [*self.history[-(self.ACT_WINDOW - 1):], (z, action)]
        return action.cpu().numpy()


class ContextActor:
    """The official acting rule (see the module docstring) for a batch of environments.

    ``act(obs, ...)`` returns actions (B,) and then appends (posterior log-probabilities of
    ``obs``, the action) to the context; all rows share one context length (they start
    together). ``last_feat`` holds the features the last policy action was computed from.
    """

    def __init__(self, wm, ac: ActorCritic, batch: int, device: torch.device,
                 window: int = 16):
        self.wm, self.ac, self.device, self.window = wm, ac, device, int(window)
        self.reset(batch)

    def reset(self, batch: int) -> None:
        self.batch = batch
        self.post: list[Tensor] = []  # per step: (B, S, K) posterior log-probabilities
        self.actions: list[Tensor] = []  # per step: (B,) long
        self.last_feat: Tensor | None = None

    def state_dict(self) -> dict:
        return {"kind": "context", "batch": self.batch, "post": list(self.post),
                "actions": list(self.actions)}

    def load_state_dict(self, sd: dict) -> None:
        if sd.get("kind") != "context":
            raise ValueError("checkpoint holds a different acting state (actor_critic.acting)")
        self.batch = int(sd["batch"])
        self.post = [p.to(self.device) for p in sd["post"]]
        self.actions = [a.to(self.device) for a in sd["actions"]]

    @torch.no_grad()
    def features(self) -> Tensor:
        """concat(z ~ prior(d), d) from the current context, d its last sequence output."""
        z_ctx = self.wm.sample(torch.stack(self.post, 1))  # (B, L, S*K), re-sampled
        d = self.wm.observe(z_ctx, torch.stack(self.actions, 1))[:, -1]  # (B, D), fresh state
        z = self.wm.sample(self.wm.prior_logits(d))  # (B, S*K)
        return torch.cat([z, d], dim=-1)

    @torch.no_grad()
    def act(self, obs: np.ndarray, greedy: bool = False, policy: bool = True,
            random_actions: np.ndarray | None = None) -> np.ndarray:
        """Actions (B,) for frames ``obs`` (B, 64, 64, 3) uint8.

        ``policy=False`` (the random warm-up) takes ``random_actions`` and keeps no context, as
        the official loop, so the first policy step after the warm-up is random too.
        """
        assert obs.ndim == 4 and obs.dtype == np.uint8, (obs.shape, obs.dtype)
        if not policy:
            return np.asarray(random_actions, dtype=np.int64)
        if not self.post:  # empty context: a uniformly random action (official)
            action = torch.randint(self.ac.num_actions, (obs.shape[0],), device=self.device)
        else:
            self.last_feat = self.features()
            action = self.ac.act(self.last_feat, greedy=greedy)  # (B,)
        frames = torch.from_numpy(obs).to(self.device)
        self.post = [*self.post[-(self.window - 1):], self.wm.encode(frames)]
        self.actions = [*self.actions[-(self.window - 1):], action]
        return action.cpu().numpy()


def make_actor(wm, ac: ActorCritic, batch: int, device: torch.device):
    """The actor ``ac.cfg.acting`` asks for (``context``: official, ``recurrent``)."""
    if ac.cfg.acting == "context":
        return ContextActor(wm, ac, batch, device, ac.cfg.acting_context)
    return RecurrentActor(wm, ac, batch, device)


@torch.no_grad()
def evaluate(wm, ac: ActorCritic, envs: list, seeds: list[int], *, greedy: bool,
             torch_seed: int, device: torch.device,
             on_episode: Callable[[int, float, int], None] | None = None,
             carry_context: bool = False) -> list[tuple[float, int]]:
    """Run one episode per seed (``len(envs)`` at a time); returns [(return, length)] in order.

    ``carry_context`` (``train.eval_context=carry``): env slots play their episodes back to
    back and, with ``acting=context``, keep the acting context across them (module docstring).
    """
    results: list[tuple[float, int]] = [(0.0, 0)] * len(seeds)
    was_training = (wm.training, ac.training)
    wm.eval()
    ac.eval()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(torch_seed)
        if carry_context and ac.cfg.acting == "context":
            _evaluate_carried(wm, ac, envs, seeds, greedy, device, on_episode, results)
            seeds = []  # done
        for start in range(0, len(seeds), len(envs)):
            wave = list(range(start, min(start + len(envs), len(seeds))))
            n = len(wave)
            actor = make_actor(wm, ac, n, device)
            obs = np.stack([envs[j].reset(seed=seeds[i])[0] for j, i in enumerate(wave)])
            returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
            alive = np.ones(n, dtype=bool)
            while alive.any():
                actions = actor.act(obs, greedy=greedy)
                for j in np.flatnonzero(alive):
                    o, r, term, trunc, _ = envs[j].step(int(actions[j]))
                    obs[j] = o
                    returns[j] += r
                    lengths[j] += 1
                    if term or trunc:
                        alive[j] = False
                        results[wave[j]] = (float(returns[j]), int(lengths[j]))
                        if on_episode is not None:
                            on_episode(wave[j], float(returns[j]), int(lengths[j]))
    wm.train(was_training[0])
    ac.train(was_training[1])
    return results


def _evaluate_carried(wm, ac: ActorCritic, envs: list, seeds: list[int], greedy: bool,
                      device: torch.device, on_episode, results: list) -> None:
    """``carry`` evaluation: slot j plays episodes j, j + n, ... with one context throughout."""
    n = min(len(envs), len(seeds))
    queue = [list(range(j, len(seeds), n)) for j in range(n)]  # episode indices per slot
    current = [q.pop(0) for q in queue]  # the episode each slot plays (None: done)
    actor = make_actor(wm, ac, n, device)
    obs = np.stack([envs[j].reset(seed=seeds[current[j]])[0] for j in range(n)])
    returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    while any(i is not None for i in current):
        actions = actor.act(obs, greedy=greedy)
        for j in range(n):
            i = current[j]
            if i is None:
                continue
            o, r, term, trunc, _ = envs[j].step(int(actions[j]))
            obs[j] = o
            returns[j] += r
            lengths[j] += 1
            if term or trunc:
                results[i] = (float(returns[j]), int(lengths[j]))
                if on_episode is not None:
                    on_episode(i, float(returns[j]), int(lengths[j]))
                current[j] = queue[j].pop(0) if queue[j] else None
                returns[j], lengths[j] = 0.0, 0
                if current[j] is not None:  # the next episode; the context runs on
                    obs[j] = envs[j].reset(seed=seeds[current[j]])[0]


def frame_digest(obs: np.ndarray | Tensor) -> str:
    """A short content hash of a frame (used to verify an environment replay on resume)."""
    import hashlib

    arr = obs.cpu().numpy() if isinstance(obs, Tensor) else np.asarray(obs)
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]
