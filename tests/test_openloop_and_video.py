"""Open-loop predictions (drama.openloop, train.openloop) and videos of the agent playing
(drama.evaluate_run --video) on a real debug run of a real game (Pong)."""

import subprocess

import imageio.v2 as imageio
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from helpers import PY, ROOT

from drama.diagnose import load_run
from drama.evaluate_run import evaluate_run
from drama.evaluate_run import main as evaluate_main
from drama.openloop import main as openloop_main
from drama.openloop import open_loop, openloop_from_replay, render_strip, strip_layout

pytestmark = pytest.mark.slow  # a real Atari run first (~20 s on 2 cores)

CONTEXT, HORIZON = 4, 8  # the debug preset's actor_critic.imag_context / imag_horizon


@pytest.fixture(scope="module")
def pong(tmp_path_factory):
    """Pong, debug preset, 70 steps (20 updates), open loop and TensorBoard on; episodes capped
    at 100 agent steps (env.max_episode_frames=400) so evaluations are short; replay kept."""
    out = tmp_path_factory.mktemp("pong") / "run"
    res = subprocess.run(
        [PY, "-m", "drama.train", "--game", "Pong", "--seed", "0", "--variant", "drama",
         "--preset", "debug", "--steps", "70", "--device", "cpu", "--out", str(out),
         "--set", "replay.warmup=50", "--set", "train.eval_every=0",
         "--set", "train.final_eval_episodes=1", "--set", "train.torch_threads=1",
         "--set", "env.max_episode_frames=400", "--set", "train.keep_replay=true",
         "--openloop", "--tensorboard"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return out


def test_training_writes_the_strip_and_gif_at_the_evaluation(pong):
    T = CONTEXT + HORIZON
    g = strip_layout(T, 2)
    png = Image.open(pong / "openloop" / "step0000070.png")
    assert png.size == (g["width"], g["height"]) and png.mode == "RGB"
    gif = Image.open(pong / "openloop" / "step0000070.gif")
    assert gif.n_frames == T
    assert gif.size == (3 * 128 + 2 * 4, gif.size[1]) and gif.size[1] > 128
    acc = EventAccumulator(str(pong), size_guidance={"images": 0})
    acc.Reload()
    [event] = acc.Images("openloop/strip")
    assert event.step == 70 and (event.width, event.height) == png.size


def test_actions_after_the_context_change_the_imagined_columns_only(pong):
    run = load_run(pong, "cpu")
    ol = openloop_from_replay(run.wm, run.replay, CONTEXT, HORIZON, seed=0)
    T, C = ol.steps, ol.context
    assert (T, C) == (CONTEXT + HORIZON, CONTEXT)
    assert ol.real.shape == ol.recon.shape == ol.pred.shape == (T, 64, 64, 3)
    terminations = 1.0 - ol.cont_real
    again = open_loop(run.wm, ol.real, ol.actions, ol.reward_real, terminations, C, seed=5)
    other = ol.actions.copy()
    other[C:] = (other[C:] + 1) % run.num_actions
    changed = open_loop(run.wm, ol.real, other, ol.reward_real, terminations, C, seed=5)
    # the context (frames, reconstructions, head predictions) does not see later actions
    np.testing.assert_array_equal(changed.recon, again.recon)
    np.testing.assert_array_equal(changed.pred[:C], again.pred[:C])
    np.testing.assert_array_equal(changed.reward_pred[:C], again.reward_pred[:C])
    np.testing.assert_array_equal(changed.cont_pred[:C], again.cont_pred[:C])
    # the first imagined frame comes from d_{C-1} (context only); what follows depends on them
    np.testing.assert_array_equal(changed.pred[C], again.pred[C])
    assert not np.array_equal(changed.pred[C + 1:], again.pred[C + 1:])
    assert not np.array_equal(changed.reward_pred[C:], again.reward_pred[C:])
    # on the strip: the context columns' pixels are identical, the imagined ones are not
    a, b = render_strip(again), render_strip(changed)
    g = strip_layout(T, 2)
    split = g["label"] + C * g["col"]
    top = g["header"] + g["bar"]  # below the title
    np.testing.assert_array_equal(a[top:, :split], b[top:, :split])
    assert not np.array_equal(a[top:, split:], b[top:, split:])


def test_command_on_a_run_directory(pong, tmp_path, capsys):
    """From the kept replay, and from fresh frames of the run's env (a finished run without
    its replay takes that path)."""
    for source in ("replay", "env"):
        prefix = tmp_path / source
        assert openloop_main([str(pong), "--out", str(prefix), "--source", source,
                              "--skip", "5", "--horizon", "6"]) == 0
        assert f"from the {source}" in capsys.readouterr().out
        assert Image.open(f"{prefix}.gif").n_frames == CONTEXT + 6
        assert Image.open(f"{prefix}.png").size == (strip_layout(CONTEXT + 6, 2)["width"],
                                                   strip_layout(CONTEXT + 6, 2)["height"])
    assert openloop_main([str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


@pytest.mark.parametrize("ext", ["mp4", "gif"])
def test_video_has_one_frame_per_step_at_native_resolution(pong, tmp_path, ext):
    video, table = tmp_path / f"play.{ext}", tmp_path / "play.parquet"
    assert evaluate_main([str(pong), "--episodes", "2", "--policy", "sampled",
                          "--out", str(table), "--video", str(video)]) == 0
    ev = pd.read_parquet(table)
    expected = int(ev["length"].sum()) + len(ev)  # each episode's reset frame and its steps
    if ext == "mp4":
        reader = imageio.get_reader(video)  # ffmpeg decodes it
        frames = [f for f in reader]
        assert reader.get_meta_data()["fps"] == 15
    else:
        gif = Image.open(video)
        frames = [np.asarray(gif.seek(i) or gif.convert("RGB")) for i in range(gif.n_frames)]
    assert len(frames) == expected
    # recording changes nothing about the episodes
    pd.testing.assert_frame_equal(ev, evaluate_run(pong, 2, "sampled"))
    assert frames[0].shape == (14 + 210, 160, 3)  # the score banner above the raw screen
    # the game area is the emulator's picture: Pong's brown field, not a blank frame
    assert frames[-1][14 + 100:14 + 150].std() > 0


def test_video_errors_are_one_line_before_playing(pong, tmp_path, capsys):
    assert evaluate_main([str(pong), "--video", str(tmp_path / "x.avi")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ".mp4 or .gif" in err[0]
    assert evaluate_main([str(pong), "--video", str(tmp_path / "no" / "x.gif")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.avi").exists()
