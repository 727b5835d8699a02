"""The one Atari100k environment builder, used by training and evaluation alike.

Protocol (the official Drama code's ICLR release, ``envs/my_atari.py``, DreamerV3 style):

- gymnasium + ale-py ``ALE/{Game}-v5`` with ``frameskip=1`` at the ALE level,
  ``repeat_action_probability=0.0`` (no sticky actions), the minimal action set;
- action repeat 4; the observation is the pixel-wise max over the last two frames of the
  repeat, resized to 64x64 RGB uint8 with OpenCV's area interpolation;
- rewards summed over the repeat and left unclipped (the world model symlogs them);
- episodes are capped at 108,000 frames (27,000 agent steps), surfacing as ``truncated``;
- no no-op starts (``noop_max`` is a protocol field, default 0);
- life loss: ``info["life_loss"]`` is True on the agent step in which a life was lost; the
  episode continues without a reset (``terminated`` stays False until game over). The action
  repeat stops early at the life loss, as in the official code. Training stores
  ``terminated or info["life_loss"]`` as the world model's termination flag.

``info`` keys added by this module: ``life_loss`` (bool), ``lives`` (int), ``frames`` (ALE
frames since reset). The protocol in force is ``env.protocol`` (a dict that goes into every
run's metadata); ``atari_protocol(**overrides)`` returns it without building an env.
"""

from __future__ import annotations

from typing import Any

import cv2
import gymnasium as gym
import numpy as np

# The 26 Atari100k games (Kaiser et al. 2020), CamelCase as in the ALE v5 ids.
ATARI100K_GAMES: tuple[str, ...] = (
    "Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout",
    "ChopperCommand", "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero",
    "Jamesbond", "Kangaroo", "Krull", "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert",
    "RoadRunner", "Seaquest", "UpNDown",
)  # fmt: skip

DEFAULT_PROTOCOL: dict[str, Any] = {
    "action_repeat": 4,  # agent step = 4 ALE frames
    "max_pool_frames": 2,  # max over the last 2 frames of the repeat
    "size": 64,  # square observation side, RGB
    "resize": "opencv_area",
    "repeat_action_probability": 0.0,  # no sticky actions
    "full_action_space": False,  # minimal action set
    "max_episode_frames": 108_000,  # 27,000 agent steps
    "noop_max": 0,  # the official code has no no-op starts
    "life_loss_flag": True,  # info["life_loss"] on every life loss, no reset
    "break_repeat_on_life_loss": True,  # official: the repeat stops when a life is lost
    # max over the last two frames the repeat actually produced, wherever it stopped (the
    # release's eval.py MaxLast2FrameSkipWrapper); False: the rule of its training env, below
    "pool_last_two_seen": False,
    "reward_clip": False,  # rewards unclipped; the model symlogs them
}

PROTOCOL_KEYS = tuple(DEFAULT_PROTOCOL)


def _check_game(game: str) -> None:
    if game not in ATARI100K_GAMES:
        raise ValueError(
            f"unknown game {game!r}: the Atari100k games are {', '.join(ATARI100K_GAMES)}"
        )


def atari_protocol(**overrides: Any) -> dict[str, Any]:
    """The Atari100k protocol with ``overrides`` applied; an unknown key is a ValueError."""
    unknown = sorted(set(overrides) - set(DEFAULT_PROTOCOL))
    if unknown:
        raise ValueError(
            f"unknown protocol key(s) {unknown}: valid keys are {', '.join(PROTOCOL_KEYS)}"
        )
    protocol = dict(DEFAULT_PROTOCOL)
    protocol.update(overrides)
    if protocol["action_repeat"] < 1 or protocol["max_pool_frames"] not in (1, 2):
        raise ValueError(f"bad action_repeat/max_pool_frames in protocol {protocol}")
    if protocol["noop_max"] < 0 or protocol["max_episode_frames"] < 1:
        raise ValueError(f"bad noop_max/max_episode_frames in protocol {protocol}")
    if protocol["resize"] != "opencv_area":
        raise ValueError(f"unsupported resize {protocol['resize']!r}: only 'opencv_area'")
    return protocol


class AtariEnv(gym.Env):
    """An ALE v5 game under the Atari100k protocol (see the module docstring).

    The ALE is seeded once, from ``seed``, at the first ``reset()``; later resets continue its
    random stream, so a whole run is determined by ``seed`` and the actions.
    """

    metadata = {"render_modes": []}

    def __init__(self, game: str, seed: int, *, evaluation: bool = False, **overrides: Any):
        _check_game(game)
        import ale_py

        gym.register_envs(ale_py)
        self.game = game
        self.seed_value = int(seed)
        self.protocol = {
            "env_id": f"ALE/{game}-v5",
            "game": game,
            "evaluation": bool(evaluation),
            **atari_protocol(**overrides),
        }
        p = self.protocol
        self._env = gym.make(
            p["env_id"],
            obs_type="rgb",
            frameskip=1,
            repeat_action_probability=p["repeat_action_probability"],
            full_action_space=p["full_action_space"],
            max_num_frames_per_episode=p["max_episode_frames"],
        )
        self._ale = self._env.unwrapped.ale
        # Agent steps drive the ALE directly (what ale-py's AtariEnv.step does per frame with
        # frameskip=1, minus its per-frame screen copy); resets go through gymnasium (seeding).
        self._action_set = self._env.unwrapped._action_set
        self.action_space = self._env.action_space
        self.action_space.seed(self.seed_value)
        size = p["size"]
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        raw_shape = self._env.observation_space.shape  # (210, 160, 3)
        self._frames = [np.zeros(raw_shape, np.uint8) for _ in range(2)]
        self._noop_rng = np.random.default_rng(self.seed_value)
        self._seeded = False
        self._lives = 0
        self._frame_count = 0
        self._needs_reset = True

    # --- gymnasium API -----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:  # explicit reseed: restart every random stream from ``seed``
            self.seed_value = int(seed)
            self._noop_rng = np.random.default_rng(self.seed_value)
            self._seeded = False
        _, info = self._env.reset(seed=None if self._seeded else self.seed_value)
        self._seeded = True
        self._frame_count = 0
        noops = (
            int(self._noop_rng.integers(1, self.protocol["noop_max"] + 1))
            if self.protocol["noop_max"] > 0
            else 0
        )
        for _ in range(noops):
            _, _, terminated, truncated, info = self._env.step(0)
            self._frame_count += 1
            if terminated or truncated:
                _, info = self._env.reset()
                self._frame_count = 0
        self._lives = self._ale.lives()
        self._ale.getScreenRGB(self._frames[0])
        self._needs_reset = False
        return self._observation(self._frames[0]), self._info(info, life_loss=False)

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        p = self.protocol
        repeat = p["action_repeat"]
        total_reward, terminated, truncated, life_loss = 0.0, False, False, False
        n_frames = 0
        ale, ale_action = self._ale, self._action_set[int(action)]
        last_two = p["pool_last_two_seen"]
        for i in range(repeat):
            total_reward += float(ale.act(ale_action, 1.0))
            terminated = ale.game_over(with_truncation=False)
            truncated = ale.game_truncated()
            self._frame_count += 1
            n_frames += 1
            if last_two:  # every frame, alternating buffers: the last two seen are kept
                self._ale.getScreenRGB(self._frames[i % 2])
            elif i == repeat - 2:  # the second-to-last frame of a full repeat
                self._ale.getScreenRGB(self._frames[1])
            lives = self._ale.lives()
            if lives < self._lives:
                life_loss = p["life_loss_flag"]
                self._lives = lives
                if p["break_repeat_on_life_loss"]:
                    break
            if terminated or truncated:
                break
        if last_two:
            last = self._frames[(n_frames - 1) % 2]
        else:
            self._ale.getScreenRGB(self._frames[0])  # the last frame of this repeat
            last = self._frames[0]
        if self._frame_count >= p["max_episode_frames"] and not terminated:
            truncated = True
        if last_two and p["max_pool_frames"] == 2 and n_frames >= 2:
            frame = np.maximum(self._frames[0], self._frames[1])  # this repeat's last two
        elif last_two:
            frame = last
        elif p["max_pool_frames"] == 2 and n_frames >= 2 and n_frames >= repeat - 1:
            # max over the last two frames (the repeat ran to its second-to-last frame at least)
            frame = np.maximum(self._frames[0], self._frames[1])
        else:
            # Deviation (minor): when the repeat ends before its second-to-last frame (a life
            # loss or game over early in the repeat), the official code maxes with a stale
            # frame from the previous step; we use the fresh last frame alone.
            frame = self._frames[0]
        if p["reward_clip"]:
            total_reward = float(np.sign(total_reward))
        self._needs_reset = terminated or truncated
        obs = self._observation(frame)
        info = {"episode_frame_number": ale.getEpisodeFrameNumber(),
                "frame_number": ale.getFrameNumber()}
        return obs, total_reward, bool(terminated), bool(truncated), self._info(info, life_loss)

    def close(self):
        self._env.close()

    # --- helpers -----------------------------------------------------------------------
    def _observation(self, frame: np.ndarray) -> np.ndarray:
        size = self.protocol["size"]
        obs = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        assert obs.shape == (size, size, 3) and obs.dtype == np.uint8, (obs.shape, obs.dtype)
        return obs

    def _info(self, info: dict, life_loss: bool) -> dict:
        out = dict(info)
        out["life_loss"] = bool(life_loss)
        out["lives"] = int(self._lives)
        out["frames"] = int(self._frame_count)
        return out


def make_env(game: str, seed: int, *, evaluation: bool = False, **protocol_overrides: Any):
    """Build ``game`` under the Atari100k protocol; see the module docstring.

    ``evaluation`` is recorded in ``env.protocol``; the dynamics are the same. Unknown games
    and protocol keys raise ValueError naming the problem.
    """
    return AtariEnv(game, seed, evaluation=evaluation, **protocol_overrides)


def make_vector_env(
    game: str, seed: int, num_envs: int, *, evaluation: bool = True, **protocol_overrides: Any
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of :func:`make_env` (seeds ``seed + i``) for parallel evaluation.

    A gymnasium ``SyncVectorEnv`` (next-step autoreset) over the exact same env class, so the
    protocol is identical to training; ale-py's C++ ``AtariVectorEnv`` is faster but cannot
    honour it (see ``benchmarks/env_throughput.py`` and docs/performance.md).
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    _check_game(game)
    atari_protocol(**protocol_overrides)  # validate once, before building anything
    fns = [
        (lambda i=i: make_env(game, seed + i, evaluation=evaluation, **protocol_overrides))
        for i in range(num_envs)
    ]
    return gym.vector.SyncVectorEnv(fns)
