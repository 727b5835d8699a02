"""User errors are one line and exit code 2, naming the file or key, with nothing written;
Ctrl-C stops at a step boundary after a checkpoint, with one line and exit code 130."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from drama.checkpoint import CHECKPOINT_NAME, load_checkpoint
from drama.run_io import read_metrics
from drama.train import main
from test_train import (PY, ROOT, RUNNER, _cli, assert_same_run, colour_env, start_logged,
                        wait_ok)


def run_main(capsys, argv, env_fn=colour_env):
    code = main(argv, env_fn=env_fn)
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


@pytest.mark.parametrize("setting, needle", [
    ("world_model.encoder_mults=3", "world_model.encoder_mults"),
    ("env.noop_max=abc", "env.noop_max"),
    ("world_model.sequence_kind=lstm", "lstm"),
    ("train.eval_every=-3", "train.eval_every"),
    ("train.checkpoint_every=0", "train.checkpoint_every"),
    ("actor_critic.gamma=1.5", "actor_critic.gamma"),
])
def test_bad_setting_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, setting, needle):
    out = tmp_path / "run"
    code, err = run_main(capsys, _cli(out, 100) + ["--set", setting])
    assert_one_line_error(code, err, needle)
    assert not out.exists()
    # the corrected command then runs in the same --out (nothing poisoned it): checked cheaply
    # by resolving it, the full run is covered elsewhere


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(capsys, tmp_path):
    argv = [a if a != "cpu" else "cuda" for a in _cli(tmp_path / "run", 100)]
    code, err = run_main(capsys, argv)
    assert_one_line_error(code, err, "--device cuda", "CUDA")
    assert not (tmp_path / "run").exists()


def test_out_is_a_file_or_not_writable(capsys, tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    code, err = run_main(capsys, _cli(afile, 100))
    assert_one_line_error(code, err, str(afile), "not a directory")
    code, err = run_main(capsys, _cli(afile / "sub", 100))
    assert_one_line_error(code, err, str(afile))
    assert afile.read_text() == "x"
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        code, err = run_main(capsys, _cli(ro / "run", 100))
        assert_one_line_error(code, err, str(ro), "not writable")
    else:  # root writes anywhere a mode allows nothing: a directory the kernel refuses
        code, err = run_main(capsys, _cli(Path("/proc/no-such-dir/run"), 100))
        assert_one_line_error(code, err, "/proc/no-such-dir")


def test_malformed_config_yaml_in_out(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("game: [Pong\nseed: 0\n")
    code, err = run_main(capsys, _cli(out, 100))
    assert_one_line_error(code, err, str(out / "config.yaml"), "unreadable")
    (out / "config.yaml").write_text("just a string\n")
    code, err = run_main(capsys, _cli(out, 100))
    assert_one_line_error(code, err, str(out / "config.yaml"))
    assert (out / "config.yaml").read_text() == "just a string\n"
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_config_yaml_is_written_after_env_and_models_are_built(capsys, tmp_path):
    def broken_env(seed, evaluation=False):
        raise ValueError("this environment cannot be built")

    out = tmp_path / "run"
    code, err = run_main(capsys, _cli(out, 100), env_fn=broken_env)
    assert_one_line_error(code, err, "cannot be built")
    assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_saves_prints_one_line_and_resumes_exactly(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(tests=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    steps = 160
    # the uninterrupted run alongside the one to be interrupted (one thread each, two cores)
    full = start_logged([PY, str(script), *_cli(tmp_path / "full", steps)],
                        tmp_path / "full.log", env)
    out = tmp_path / "int"
    proc = subprocess.Popen([PY, str(script), *_cli(out, steps)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline:  # between two checkpoints (40 apart), after updates began
        rows = read_metrics(out / "metrics.jsonl") if (out / "metrics.jsonl").exists() else []
        if rows and rows[-1]["step"] >= 90:
            break
        assert proc.poll() is None, "run finished before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-3000:]
    m = re.fullmatch(r"interrupted at step (\d+); rerun the same command to resume",
                     stderr.strip())
    assert m, stderr[-3000:]
    step = int(m.group(1))
    assert 90 <= step < steps and load_checkpoint(out / CHECKPOINT_NAME)["step"] == step
    assert not (out / "eval.parquet").exists()
    res = subprocess.run([PY, str(script), *_cli(out, steps)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resumed from {out / CHECKPOINT_NAME} at env step {step}" in res.stdout
    wait_ok(full, tmp_path / "full.log", 600)
    assert_same_run(tmp_path / "full", out)
