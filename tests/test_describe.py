"""python -m drama.describe: parameter counts from the real modules."""

import json
import subprocess
import sys
from pathlib import Path

from drama.config import resolve_config
from drama.describe import describe, main

ROOT = Path(__file__).resolve().parent.parent


def test_describe_paper_counts_pong_json():
    res = subprocess.run([sys.executable, "-m", "drama.describe", "--game", "Pong", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    params = out["params"]
    # issue 4: world model 7,153,923 for |A| = 3, + 512 per extra action (Pong has 6)
    assert out["num_actions"] == 6 and params["world_model"] == 7_155_459
    assert params["actor"] == 1536 * 256 + 256 + 2 * (256 * 256 + 256) + 3 * 256 + 256 * 6 + 6
    assert params["agent_total"] == params["world_model"] + params["actor"] + params["critic"]


def test_describe_variants_and_errors(capsys):
    out = describe(resolve_config("Pong", 0, "gru", "atari100k"), 6)
    assert out["sequence_kind"] == "gru"
    assert out["params"]["world_model"] != 7_155_459  # a different sequence model
    assert out["params"]["encoder"] == 232_272  # the rest is shared
    assert main(["--game", "Pong", "--variant", "lstm"]) == 2
    assert "lstm" in capsys.readouterr().err
