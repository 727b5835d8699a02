"""Videos of the agent playing: raw ALE frames with the running score (``evaluate_run --video``).

:class:`FrameRecorder` wraps an evaluation environment (drama.envs.AtariEnv) and keeps, after
the reset and after every agent step, the emulator's screen at its native resolution (210 x 160
RGB, the last of the step's 4 frames; the agent itself sees the max of the last two, resized to
64 x 64) together with the episode's running score. :func:`write_video` writes the recorded
episodes one after another, one video frame per agent step (15 per second: real time, as an
agent step is 4 frames of the 60 Hz console), each with a banner above the game showing the
episode, the step and the score so far:

* ``.mp4``: H.264 through imageio + imageio-ffmpeg (whose wheel ships the ffmpeg binary;
  ``pip install -e ".[video]"``);
* ``.gif``: Pillow only (no encoder needed); every frame is held in memory until written, so
  keep GIFs to short recordings.

The recorder holds the raw frames of the episodes until they are written: about 100 kB per
agent step (an Atari100k evaluation episode is typically 1,000-5,000 steps).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from drama.run_io import atomic_write_bytes

FPS = 15  # agent steps per second of real play (60 Hz / action repeat 4)
BANNER = 14  # pixels above the 210-pixel screen: 224 = 14 x 16 (H.264 macroblocks)
FORMATS = (".mp4", ".gif")
VIDEO_HINT = 'pip install -e ".[video]"'


def check_video_path(path: str | Path) -> Path:
    """``path`` as a Path; a ValueError naming the problem if it cannot be written as a video
    here (unknown extension, MP4 without imageio-ffmpeg, missing directory)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"--video {path}: the file name must end in .mp4 or .gif")
    if ext == ".mp4":
        try:
            import imageio  # noqa: F401
            import imageio_ffmpeg

            imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError) as e:
            raise ValueError(f"--video {path}: MP4 needs imageio and imageio-ffmpeg ({VIDEO_HINT}"
                             f"; {type(e).__name__}: {' '.join(str(e).split())}); or write a "
                             f".gif") from None
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--video {path}: directory {parent} does not exist")
    return path


def raw_frame(env) -> np.ndarray:
    """The emulator's current screen (210, 160, 3) uint8 of a drama.envs.AtariEnv."""
    ale = getattr(getattr(env, "unwrapped", env), "_ale", None)
    if ale is None:
        raise ValueError(f"--video records ALE games only; {type(env).__name__} has no emulator")
    return ale.getScreenRGB()


class FrameRecorder:
    """An evaluation env that keeps each episode's raw frames and running score (by the reset
    seed, which names the episode: drama.run.eval_episode_seeds)."""

    def __init__(self, env):
        self.env = env
        self.action_space = env.action_space
        self.observation_space = env.observation_space
        self.episodes: dict[int, list[tuple[np.ndarray, float]]] = {}
        self._current: list[tuple[np.ndarray, float]] = []
        self._score = 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._current = self.episodes.setdefault(-1 if seed is None else int(seed), [])
        self._current.clear()
        self._score = 0.0
        self._current.append((raw_frame(self.env), 0.0))
        return obs, info

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        self._score += float(reward)
        self._current.append((raw_frame(self.env), self._score))
        return obs, reward, term, trunc, info

    def close(self) -> None:
        self.env.close()


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=10)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def annotate(frame: np.ndarray, text: str, font=None) -> np.ndarray:
    """``frame`` (H, W, 3) with a BANNER-pixel black banner above it holding ``text``."""
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    img = Image.new("RGB", (w, h + BANNER), (0, 0, 0))
    img.paste(Image.fromarray(frame), (0, BANNER))
    ImageDraw.Draw(img).text((2, 1), text, fill=(255, 255, 255), font=font or _font())
    return np.asarray(img)


def video_frames(episodes: list[list[tuple[np.ndarray, float]]]):
    """The annotated frames of ``episodes`` in order (a generator)."""
    font = _font()
    for i, frames in enumerate(episodes):
        for t, (frame, score) in enumerate(frames):
            yield annotate(frame, f"ep {i + 1}/{len(episodes)}  step {t}  score {score:g}", font)


def write_video(path: str | Path, episodes: list[list[tuple[np.ndarray, float]]],
                fps: int = FPS) -> int:
    """Write the episodes' annotated frames to ``path`` (.mp4 or .gif, atomically); returns
    the number of frames (one per recorded reset and agent step)."""
    path = check_video_path(path)
    if not any(episodes):
        raise ValueError(f"--video {path}: no frames were recorded")
    n = 0
    if path.suffix.lower() == ".gif":
        from PIL import Image

        frames = [Image.fromarray(f) for f in video_frames(episodes)]
        n = len(frames)
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:],
                       duration=round(1000 / fps), loop=0)
        atomic_write_bytes(path, buf.getvalue())
        return n
    import imageio.v2 as imageio

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".mp4", dir=path.parent or ".")
    os.close(fd)
    try:
        writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                    pixelformat="yuv420p", macro_block_size=16,
                                    ffmpeg_log_level="error")
        try:
            for frame in video_frames(episodes):
                writer.append_data(frame)
                n += 1
        finally:
            writer.close()
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
