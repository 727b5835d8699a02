"""The code's structure: what imports what, and facts that live in one place."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("drama", "analysis", "benchmarks", "tools")


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, str, int]]:
    """(module, name, line) of each ``from module import name`` in ``path``, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.module, a.name, node.lineno) for a in node.names]
    return out


def private_imports(paths: list[Path]) -> list[str]:
    """``from <our module> import _name`` across modules (dunder names are fine)."""
    bad = []
    for path in paths:
        for module, name, line in _imports(path):
            if module.split(".")[0] in PACKAGES and name.startswith("_") \
                    and not name.startswith("__"):
                bad.append(f"{path}:{line}: from {module} import {name}")
    return bad


def private_attributes(paths: list[Path]) -> list[str]:
    """``M._name`` where M is one of our modules imported under a name (``import drama.x as M``,
    ``from analysis import verdicts as M``), and ``x._name`` on one of the objects our tools
    drive (a trainer, a replay buffer): the same reach as a private import."""
    bad = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {a.asname or a.name.split(".")[0] for a in node.names
                            if a.name.split(".")[0] in PACKAGES}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.split(".")[0] in PACKAGES:
                modules |= {a.asname or a.name for a in node.names}
        for node in sorted(ast.walk(tree), key=lambda n: getattr(n, "lineno", 0)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") and isinstance(node.value, ast.Name) \
                    and (node.value.id in modules or node.value.id in DRIVEN):
                bad.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return bad


DRIVEN = {"tr", "trainer", "replay", "rb"}  # the names the tools give a Trainer / ReplayBuffer


def test_no_module_imports_another_modules_private_names():
    assert private_imports(_sources(*PACKAGES)) == []
    assert private_attributes(_sources(*PACKAGES)) == []


def test_the_private_attribute_check_finds_them(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from analysis import verdicts as V\nimport drama.replay\n"
                     "V._x(1)\nV.y\ndrama._z\ntr._t0 = 1\nself._ok\ntorch._foreach_add_\n")
    assert [b.split(": ")[1] for b in private_attributes([probe])] == ["V._x", "drama._z",
                                                                       "tr._t0"]


def test_the_private_import_check_finds_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from drama.config import _flat\nfrom drama.config import __doc__\n"
                     "def f():\n    from analysis.tables import _x, y\n")
    assert len(private_imports([probe])) == 2


def test_tools_do_not_import_the_trainer():
    """The run contract (drama.run) is what the tools share with the trainer."""
    tools = ["diagnose", "evaluate_run", "random_policy", "openloop", "describe", "run"]
    bad = [f"drama/{t}.py: {m}" for t in tools for m, _, _ in _imports(ROOT / "drama" / f"{t}.py")
           if m == "drama.train"]
    assert bad == []


def test_resolving_a_config_does_not_import_torch():
    """The workflow resolves trainer configs at parse time (workflow/rules/common.smk)."""
    code = ("import sys, drama.config\n"
            "drama.config.resolve_config('Pong', 0, 'drama', 'debug')\n"
            "drama.config.settings_key('debug', ['train.steps=10'])\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_files_stay_readable():
    """No file of the agent, the analysis or the benchmarks over 450 lines; the loop
    (drama/train.py) reads top-down in at most 400."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for p in _sources("drama", "analysis", "benchmarks")}
    assert {p: n for p, n in sizes.items() if n > 450} == {}
    assert sizes["drama/train.py"] <= 400


def test_the_variant_list_has_one_home():
    """drama/presets.yaml lists the variants; the workflow schema's enum (a file format of its
    own) and the trainer's --help say the same."""
    from drama.config import load_presets
    from drama.train import build_parser

    variants = list(load_presets()["variants"])
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["variants"]["items"]["enum"] == variants
    action = next(a for a in build_parser()._actions if a.dest == "variant")
    assert all(v in action.help for v in variants)


def test_eval_columns_agree():
    """analysis/ runs without drama (workflow/envs/analysis.yaml): its copy of the eval.parquet
    columns must be drama.run_io's."""
    from analysis.learning import EPISODE_COLUMNS
    from drama.run_io import EVAL_COLUMNS

    assert EPISODE_COLUMNS == EVAL_COLUMNS


def test_bootstrap_reps_agree():
    """analysis.aggregates' defaults, the workflow schema's and config/config.yaml's."""
    from analysis.aggregates import DEFAULT_POI_REPS, DEFAULT_REPS

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    expected = {"reps": DEFAULT_REPS, "poi_reps": DEFAULT_POI_REPS}
    props = schema["properties"]["bootstrap"]["properties"]
    assert {k: props[k]["default"] for k in expected} == expected
    assert {k: schema["properties"]["bootstrap"]["default"][k] for k in expected} == expected
    assert {k: config["bootstrap"][k] for k in expected} == expected


def test_the_paper_ablations_are_the_workflows():
    """analysis.figures.ABLATIONS (the paper's) are figures of the workflow (common.smk, which
    adds ours); the workflow's list is Python in a Snakemake file, read here as a literal."""
    from analysis.figures import ABLATIONS

    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    start = text.index("ABLATIONS = [")
    workflow = ast.literal_eval(text[start + len("ABLATIONS = "):text.index("]", start) + 1])
    assert {(f"ablation_{n}", *v) for n, v in ABLATIONS.items()} <= set(workflow)
