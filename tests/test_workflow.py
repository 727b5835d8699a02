"""Fast checks of the Snakemake workflow: config schema, lint/format, the paper grid's DAG.

The real runs (smoke grid end to end, interrupted-run resume, SLURM) are in
test_workflow_run.py and test_workflow_slurm.py.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
PAPER = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def enum(prop: str) -> list:
    return SCHEMA["properties"][prop]["items"]["enum"]


def snakemake(*args: str, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def validated(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(SCHEMA_PATH))
    return cfg


# --- schema ------------------------------------------------------------------------------------

def _objects(schema: dict, path: str = "config"):
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        if prop.get("type") == "object" and "properties" in prop:
            yield from _objects(prop, f"{path}.{name}")


def test_schema_every_property_documented_with_default_and_closed():
    for path, obj in _objects(SCHEMA):
        assert obj.get("additionalProperties") is False, path
        for name, prop in obj["properties"].items():
            assert prop.get("description", "").strip(), f"{path}.{name}: no description"
            assert "default" in prop, f"{path}.{name}: no default"
    # the defaults themselves are a valid config
    defaults = {k: v["default"] for k, v in SCHEMA["properties"].items()}
    validated(defaults)


def test_schema_enums_match_the_code():
    from analysis.scores import ATARI100K_GAMES as ANALYSIS_GAMES
    from analysis.scores import PUBLISHED_DIR
    from drama.config import load_presets
    from drama.envs import ATARI100K_GAMES
    from drama.sequence import SEQUENCE_KINDS

    assert enum("games") == list(ATARI100K_GAMES)
    assert set(enum("games")) == set(ANALYSIS_GAMES)
    presets = load_presets()
    assert set(enum("variants")) == set(presets["variants"])
    assert set(SCHEMA["properties"]["preset"]["enum"]) == set(presets["presets"])
    stems = {re.sub(r"\.json(\.gz)?$", "", p.name) for p in PUBLISHED_DIR.glob("*.json*")}
    assert set(enum("baselines")) == stems
    kinds = SCHEMA["properties"]["sequence_benchmark"]["properties"]["kinds"]["items"]["enum"]
    assert set(kinds) == {*SEQUENCE_KINDS, "encoder_layer"}


def test_reproduction_defaults_are_the_code_defaults():
    from analysis.verdicts import DEFAULTS

    props = SCHEMA["properties"]["reproduction"]["properties"]
    code = DEFAULTS.as_dict()
    code.pop("min_runs")
    assert {k: props[k]["default"] for k in code} == code
    assert {k: v for k, v in PAPER["reproduction"].items() if k != "rates"} == code
    from analysis.scores import load_scores, published_path

    for method in props["rates"]["properties"]["method"]["enum"]:  # many runs per game
        runs = load_scores(published_path(method)).groupby("game").size()
        assert len(runs) == 26 and runs.min() >= 100, method


def test_shipped_configs_are_valid_and_are_the_stated_grids():
    paper = validated(PAPER)
    assert (len(paper["games"]), len(paper["seeds"]), paper["variants"]) == (
        26, 5, ["drama", "uniform", "mamba1"])
    assert paper["preset"] == "atari100k"
    smoke = copy.deepcopy(PAPER)
    smoke.update(yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text()))
    smoke = validated(smoke)
    assert (len(smoke["games"]), len(smoke["seeds"]), len(smoke["variants"])) == (2, 2, 2)
    assert smoke["preset"] == "debug" and smoke["steps"] <= 500


@pytest.mark.parametrize("change, named", [
    ({"gamez": ["Pong"]}, "gamez"),                  # typo'd key
    ({"games": ["Pong", "Pongg"]}, "Pongg"),         # unknown game
    ({"seeds": [0, "one"]}, "seeds"),                # non-integer seed
    ({"seeds": [0, 1.5]}, "seeds"),
    ({"variants": ["drama", "mamba3"]}, "mamba3"),
    ({"bootstrap": {"reps": 10, "sede": 1}}, "sede"),  # typo inside a section
    ({"baselines": ["IRIS", "Dreamer"]}, "Dreamer"),
    ({"reproduction": {"margin_hsn": 0.1}}, "margin_hsn"),
    ({"reproduction": {"published_runs": 1}}, "published_runs"),
])
def test_bad_config_is_rejected_naming_the_problem(change, named):
    cfg = copy.deepcopy(PAPER)
    cfg.update(change)
    with pytest.raises(WorkflowError, match=re.escape(named)):
        validated(cfg)


def test_bad_config_stops_snakemake_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("games: [Pong, Pongg]\nseeds: [0]\n")
    proc = snakemake("-n", "--configfile", str(bad))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Pongg" in out and "games" in out, out[-2000:]
    assert "rule train" not in out and "Job stats" not in out


def test_train_command_is_accepted_by_the_trainer():
    """The train rule's real command line (smoke config) parses and resolves in the trainer."""
    import shlex

    from drama.config import resolve_config
    from drama.train import build_parser

    from drama.config import settings_key

    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    key = settings_key("debug", [f"{k}={v}" for k, v in smoke["trainer_overrides"].items()], 160)
    assert key.startswith("debug-")
    target = f"results/runs/{key}/Pong/uniform/seed1/eval.parquet"
    proc = snakemake(target, "-n", "-p", "--forceall", "--configfile", "config/smoke.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in (proc.stdout + proc.stderr).splitlines() if "-m drama.train" in ln)
    argv = shlex.split(line.split("-m drama.train", 1)[1].split(")", 1)[0])
    args = build_parser().parse_args(argv)
    assert (args.game, args.seed, args.variant, args.preset) == ("Pong", 1, "uniform", "debug")
    assert args.out == f"results/runs/{key}/Pong/uniform/seed1" and args.steps == 160
    cfg = resolve_config(args.game, args.seed, args.variant, args.preset, args.set, args.steps,
                         args.device)
    assert cfg.train.final_eval_episodes == 2 and cfg.train.eval_every == 75
    assert cfg.train.eval_episodes == 1 and cfg.replay.warmup == 100


def test_bad_trainer_override_stops_snakemake_before_any_job(tmp_path):
    """trainer_overrides go through the trainer's own resolver when the workflow is parsed."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer_overrides: {train.eval_evry: 5}\n")  # misspelt trainer key
    proc = snakemake("-n", "--configfile", "config/smoke.yaml", str(bad))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "train.eval_evry" in out and "trainer_overrides" in out, out[-2000:]
    assert "rule train" not in out and "Job stats" not in out


@pytest.mark.parametrize("override, named", [
    ("world_model.sequence_kind=lstm", "lstm"),     # bad enum value
    ("actor_critic.gamma=1.5", "gamma"),            # out of range
    ("env.noop_max=abc", "noop_max"),               # protocol override of the wrong type
])
def test_workflow_resolver_rejects_bad_values_for_every_variant(override, named):
    """What common.smk calls at parse time (the snakemake path is exercised above)."""
    from drama.config import settings_key

    with pytest.raises(ValueError, match=named):
        settings_key("debug", [override], 160, ["drama", "uniform", "mamba1"])


def test_run_directory_is_keyed_by_settings():
    from drama.config import settings_key

    assert settings_key("atari100k") == "atari100k"  # the paper grid: no overrides
    assert settings_key("debug") == "debug"
    a = settings_key("debug", ["train.eval_every=75", "replay.warmup=100"], 160)
    # same settings spelt differently (order, 75.0, a value equal to the preset's) -> same key
    assert a == settings_key("debug", ["replay.warmup=100", "train.eval_every=75.0",
                                       "train.log_every=100"], 160)
    assert a != settings_key("debug", ["train.eval_every=75", "replay.warmup=100"], 161)
    assert a != settings_key("debug", ["train.eval_every=75"], 160)
    assert settings_key("atari100k", steps=160) not in (a, "atari100k")


# --- lint, format, DAG -------------------------------------------------------------------------

def test_snakemake_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_snakefmt_is_clean():
    exe = shutil.which("snakefmt") or str(Path(sys.executable).with_name("snakefmt"))
    proc = subprocess.run([exe, "--check", "Snakefile", "workflow/"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _job_counts(text: str) -> dict[str, int]:
    block = text.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def test_paper_grid_dry_run_lists_390_training_jobs():
    proc = snakemake("-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["train"] == 26 * 5 * 3 == 390
    for rule in ["collect", "per_game_table", "aggregates", "performance_profiles",
                 "probability_of_improvement", "sample_efficiency", "cost_table",
                 "sequence_benchmark", "sequence_scaling"]:
        assert counts[rule] == 1, rule
    assert counts["ablation"] == 2  # DFS vs uniform, Mamba-2 vs Mamba-1


def test_cpu_learning_grid_has_its_own_results_folder_and_random_baseline():
    """config/cpu_learning.yaml: 2 games x 2 seeds at the cpu preset, a random policy per game,
    the learning table/figure, and every analysis output under results/cpu_learning/."""
    proc = snakemake("-n", "-p", "--forceall", "--configfile", "config/cpu_learning.yaml",
                     "--workflow-profile", "profiles/cpu")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    counts = _job_counts(out)
    assert (counts["train"], counts["random_policy"], counts["learning"]) == (4, 2, 1)
    assert counts["sampled_eval"] == 4  # each final checkpoint, sampled actions
    assert "--out results/runs/cpu/Krull/drama/seed1 --preset cpu --device cpu" in out
    assert "--game Boxing --out results/cpu_learning/random/Boxing.parquet --preset cpu" in out
    outputs = [p for line in re.findall(r"^\s+output: (.+)$", out, re.M)
               for p in line.split(", ")]
    analysis = [p for p in outputs if not p.startswith("results/runs/")]
    assert analysis and all(p.startswith("results/cpu_learning/") for p in analysis), analysis
    assert "results/cpu_learning/figures/learning_curves.png" in analysis
    for bad in ("/tmp/elsewhere", "results/../x", "out"):
        with pytest.raises(Exception, match="results"):
            validated({**PAPER, "results": bad})


def test_corrected_ablation_is_one_config_away():
    """`--config variants='[drama,corrected]'` plans both variants and the corrections figure."""
    proc = snakemake("-n", "--quiet", "rules", "--config", "variants=[drama,corrected]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["train"] == 26 * 5 * 2 and counts["ablation"] == 1
    proc = snakemake("results/figures/ablation_corrected.png", "-n", "-p", "--configfile",
                     "config/smoke.yaml", "--config", "variants=[drama,corrected]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--variant corrected" in proc.stdout + proc.stderr


def test_slurm_profile_resolves_from_repo_root():
    """`snakemake --profile slurm` finds ./slurm (-> profiles/slurm) from the repo root."""
    assert (ROOT / "slurm" / "config.yaml").resolve() == \
        (ROOT / "profiles" / "slurm" / "config.yaml").resolve()
    prof = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm"
    assert prof["slurm-status-command"] == "squeue" and prof["slurm-requeue"] is True
    assert "slurm_partition" not in prof["default-resources"]  # left to the user
    # a dry run needs no SLURM binaries (the executor plugin calls none before submitting)
    proc = snakemake("--profile", "slurm", "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _job_counts(proc.stdout + proc.stderr)["train"] == 390


# --- hygiene: rules, resources, environments, adapters -----------------------------------------

RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]


def test_shell_commands_name_no_checkout_or_interpreter_path():
    """No absolute path of the checkout or of the interpreter (a venv) in any job's command: it
    would mark every run changed (rerun trigger `code`) when the checkout or the venv moves.
    The rules call `python` from PATH and scripts by checkout-relative paths."""
    proc = snakemake("-n", "-p", "--forceall", "--configfile", "config/smoke.yaml",
                     "--workflow-profile", "profiles/cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    shells = [ln for ln in (proc.stdout + proc.stderr).splitlines()
              if ln.startswith("Shell command:")]
    assert len(shells) >= 8 and any("python -m drama.train" in c for c in shells), shells[:3]
    for cmd in shells:
        for path in (str(ROOT), sys.executable, str(Path(sys.executable).parent)):
            assert path not in cmd, (path, cmd)


def _dry_run_jobs(*args: str, keys: tuple[str, ...] = ("resources:",)) -> dict[str, list[str]]:
    """rule -> the 'resources:' lines (or those starting with one of ``keys``) of its jobs in a
    dry run."""
    proc = snakemake("-n", "--forceall", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs: dict[str, list[str]] = {}
    rule = None
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        elif line.strip().startswith(keys) and rule:
            jobs.setdefault(rule, []).append(line)
    return jobs


def test_resources_come_from_the_profiles_and_cpu_runs_request_no_gpu():
    # without a workflow profile, no job asks for anything but Snakemake's default tmpdir, and
    # none for threads: the rules set no resources or threads of their own
    bare = _dry_run_jobs("--configfile", "config/smoke.yaml", "--workflow-profile", "none",
                         keys=("resources:", "threads:"))
    assert len(bare["train"]) == 8
    assert all(re.fullmatch(r"resources: tmpdir=\S+", r.strip()) for rs in bare.values()
               for r in rs), bare
    paper = _dry_run_jobs()  # profiles/default: the paper preset on GPU machines
    assert len(paper["train"]) == 390
    assert all("gpu=1" in r and "mem_mb=32000" in r for r in paper["train"])
    smoke = _dry_run_jobs("--configfile", "config/smoke.yaml", "--workflow-profile",
                          "profiles/cpu")
    assert len(smoke["train"]) == 8
    assert not any("gpu" in r for rs in smoke.values() for r in rs), smoke["train"][:2]
    cpu = yaml.safe_load((ROOT / "profiles/cpu/config.yaml").read_text())
    default = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert cpu["set-threads"]["train"] == 1
    # the behaviour settings of the two workflow profiles agree
    for key in ("keep-going", "rerun-incomplete", "rerun-triggers"):
        assert cpu[key] == default[key], key


def test_run_info_is_declared_by_train_and_read_by_collect():
    proc = snakemake("-n", "--forceall", "results/scores.parquet", "--configfile",
                     "config/smoke.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert out.count("run_info.json") >= 8


def test_analysis_rules_use_the_small_analysis_env():
    """Collect and every analysis rule run in workflow/envs/analysis.yaml, which lists every
    third-party module that analysis/ and the adapters import, and no torch."""
    import ast

    env = yaml.safe_load((ROOT / "workflow/envs/analysis.yaml").read_text())
    listed = set()
    for dep in env["dependencies"]:
        for d in dep["pip"] if isinstance(dep, dict) else [dep]:
            listed.add(re.split(r"[<>=!~ ]", d, maxsplit=1)[0].lower())
    assert "torch" not in listed and "pytorch" not in listed
    imported = set()
    for path in [*(ROOT / "analysis").glob("*.py"), *(ROOT / "workflow/scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    local = {"analysis", "analysis_path", "snakemake"}
    third_party = {m for m in imported - local if m not in sys.stdlib_module_names}
    assert third_party <= listed, third_party - listed
    text = "".join(p.read_text() for p in RULE_FILES)
    for rule in ["collect", "reproduction", "per_game_table", "aggregates",
                 "performance_profiles", "probability_of_improvement", "ablation",
                 "sample_efficiency", "cost_table", "sequence_scaling"]:
        block = re.search(rf"^rule {rule}:\n(.*?)(?=^rule |\Z)", text, re.S | re.M).group(1)
        assert '"../envs/analysis.yaml"' in block, rule


def test_adapters_are_thin():
    """workflow/scripts/ holds adapters: no function or class of their own, at most ~40 lines;
    the logic lives in analysis/ (tested there)."""
    for path in (ROOT / "workflow/scripts").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^(def|class) ", text, re.M), path
        assert len(text.splitlines()) <= 40, (path, len(text.splitlines()))


def test_documented_commands_work():
    """The Snakefile header's commands (as dry runs): targets before --configfile."""
    header = [ln for ln in (ROOT / "Snakefile").read_text().splitlines() if ln.startswith("#")]
    cmds = [ln.split(":", 1)[1].strip() for ln in header if re.match(r"#\s+[\w ()]+:\s+snake", ln)]
    cmds = [c for c in cmds if "--profile slurm" not in c]  # SLURM: test_slurm_profile_...
    assert len(cmds) == 4, header
    for cmd in cmds:
        proc = snakemake(*cmd.split()[1:], "-n", "--quiet", "rules")
        assert proc.returncode == 0, (cmd, proc.stderr[-2000:])


def test_runs_dir_of_the_one_run_example_is_ignored():
    proc = subprocess.run(["git", "check-ignore", "-q", "runs/pong-0/eval.parquet"], cwd=ROOT)
    assert proc.returncode == 0
