"""User errors are one line and exit code 2, naming the file or key, with nothing written.
(Ctrl-C: one line, exit code 130, exact resume: tests/test_train.py's exact-resume test.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import cli_args, colour_env

from drama.train import main


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
    code, err = run_main(capsys, cli_args(out, 100) + ["--set", setting])
    assert_one_line_error(code, err, needle)
    assert not out.exists()  # so nothing can poison the corrected command in the same --out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(capsys, tmp_path):
    argv = [a if a != "cpu" else "cuda" for a in cli_args(tmp_path / "run", 100)]
    code, err = run_main(capsys, argv)
    assert_one_line_error(code, err, "--device cuda", "CUDA")
    assert not (tmp_path / "run").exists()


def test_out_is_a_file_or_not_writable(capsys, tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    code, err = run_main(capsys, cli_args(afile, 100))
    assert_one_line_error(code, err, str(afile), "not a directory")
    code, err = run_main(capsys, cli_args(afile / "sub", 100))
    assert_one_line_error(code, err, str(afile))
    assert afile.read_text() == "x"
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        code, err = run_main(capsys, cli_args(ro / "run", 100))
        assert_one_line_error(code, err, str(ro), "not writable")
    else:  # root writes anywhere a mode allows nothing: a directory the kernel refuses
        code, err = run_main(capsys, cli_args(Path("/proc/no-such-dir/run"), 100))
        assert_one_line_error(code, err, "/proc/no-such-dir")


def test_malformed_config_yaml_in_out(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("game: [Pong\nseed: 0\n")
    code, err = run_main(capsys, cli_args(out, 100))
    assert_one_line_error(code, err, str(out / "config.yaml"), "unreadable")
    (out / "config.yaml").write_text("just a string\n")
    code, err = run_main(capsys, cli_args(out, 100))
    assert_one_line_error(code, err, str(out / "config.yaml"))
    assert (out / "config.yaml").read_text() == "just a string\n"
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_config_yaml_is_written_after_env_and_models_are_built(capsys, tmp_path):
    def broken_env(seed, evaluation=False):
        raise ValueError("this environment cannot be built")

    out = tmp_path / "run"
    code, err = run_main(capsys, cli_args(out, 100), env_fn=broken_env)
    assert_one_line_error(code, err, "cannot be built")
    assert not out.exists()
