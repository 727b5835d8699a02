"""pyproject.toml and environment.yml name the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {_name(d): d.replace(" ", "") for d in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_deps = {_name(d): d.replace(" ", "") for d in pip if not d.startswith("-e")}
    assert set(env_deps) == set(deps), set(env_deps) ^ set(deps)
    for name, spec in deps.items():
        assert env_deps[name] == spec, (name, env_deps[name], spec)
    assert any(d.startswith("-e .") for d in pip), "environment.yml must install the project"


def test_pins_that_matter():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    joined = " ".join(deps)
    assert "pandas>=2.0,<3" in joined  # rliable 1.2 -> arch 7.2 breaks on pandas 3
    assert "opencv-python-headless" in joined
    torch_spec = next(d for d in deps if _name(d) == "torch")
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_spec[len("torch") :].split("#")[0].strip())
