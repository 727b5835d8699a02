"""Every command in README.md and docs/ runs as written, and every path and link they name exists.

Commands are taken from fenced code blocks and inline code spans: ``python -m MODULE ...``,
``python path/to/script.py ...``, ``bash path/to/script.sh ...``, ``snakemake ...`` and
``make TARGET``. Each Python module or script must exist and answer ``--help`` with exit code 0
(what a misspelt module, a moved script or a broken import fails); each ``make`` target must exist
(``make -n``); each ``snakemake`` command must plan (``snakemake -n``, a dry run, with the options
as written: a misspelt config file, profile or target fails). Repository paths (``drama/...``,
``docs/...``, ``tests/x.py::test``, ...) and relative Markdown links must exist.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# Top-level entries whose paths are checked when a document names them (results/ holds outputs,
# which a fresh clone does not have; only its README is checked).
REPO_DIRS = ("drama", "analysis", "workflow", "benchmarks", "scripts", "tools", "tests", "docs",
             "config", "profiles", "slurm", ".ci")
REPO_FILES = ("Makefile", "Snakefile", "pyproject.toml", "environment.yml", "README.md",
              "results/README.md")
PLACEHOLDER = re.compile(r"[{}<>*|]|\.\.\.")  # {game}, <hash>, *.whl, a|b, ...
UPPER_WORD = re.compile(r"^[A-Z][A-Z_]+$")  # RUN_DIR, FILE, OUT: a value to fill in
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)*)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
COMMAND_START = re.compile(r"(?:^|\s)((?:python3?|bash|snakemake|make)\s.*|make)$", re.S)
TIMEOUT = 120


def _texts(path: Path) -> list[str]:
    """The code of a Markdown file: each fenced block's logical lines (backslash continuations
    joined) and each inline code span (line breaks inside it become spaces)."""
    text = path.read_text(encoding="utf-8")
    out = []
    for block in FENCE.findall(text):
        out += [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    prose = FENCE.sub("", text)
    out += [" ".join(span.split()) for span in INLINE.findall(prose)]
    return out


def _strip(line: str) -> str:
    """A command line without its comment, environment assignments or `.venv/bin/` prefix."""
    line = line.split(" #")[0].strip()
    line = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", line)
    return re.sub(r"(?:^|(?<=\s))(?:\.venv/bin/|\$\(VENV\)/bin/)", "", line)


def commands(paths=DOCS) -> dict[tuple, set[str]]:
    """{check: documents}: each check is ("module", name), ("script", path), ("make", target) or
    ("snakemake", argv tuple), found in the code of the given Markdown files."""
    found: dict[tuple, set[str]] = {}
    for path in paths:
        for text in _texts(path):
            for part in re.split(r"&&|;|\|\|", text):
                part = _strip(part)
                m = COMMAND_START.search(part)
                if not m:
                    continue
                try:
                    argv = shlex.split(m.group(1))
                except ValueError:
                    continue
                for check in _checks(argv):
                    name = os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)
                    found.setdefault(check, set()).add(name)
    return found


def _checks(argv: list[str]) -> list[tuple]:
    prog, args = argv[0], argv[1:]
    if prog in ("python", "python3"):
        if args[:1] == ["-m"] and len(args) > 1:
            module = args[1]
            if module in ("pip", "venv", "pytest"):
                return []
            if len(args) > 2 and re.fullmatch(r"[a-z]+", args[2]):  # a subcommand: analysis power
                module += f" {args[2]}"
            return [("module", module)]
        if args and args[0].endswith(".py"):
            return [("script", args[0])]
        return []
    if prog == "bash" and args and args[0].endswith(".sh"):
        return [("script", args[0])]
    if prog == "make":
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        return [("make", t) for t in targets[:1]]  # `make -n` alone names no target
    if prog == "snakemake":
        if "-n" in args or "--dry-run" in args:  # a mention of the dry run itself
            return []
        if any(PLACEHOLDER.search(a) or UPPER_WORD.match(a) for a in args):
            return []
        return [("snakemake", tuple(args))]
    return []


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_check(check: tuple) -> str | None:
    """None if the command exists and answers as it should, else the reason."""
    kind, what = check
    if kind == "module":
        argv = [sys.executable, "-m", *what.split(), "--help"]
    elif kind == "script":
        path = ROOT / what
        if not path.is_file():
            return f"{what}: no such file"
        if what.endswith(".sh"):
            out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            return None if out.returncode == 0 else f"bash -n {what}: {out.stderr.strip()}"
        argv = [sys.executable, str(path), "--help"]
    elif kind == "make":
        argv = ["make", "-n", *([what] if what else [])]
    else:
        args = [a for a in what if a not in ("--report", "results/report.html")]
        # A report needs finished results; the dry run checks the rest of the command.
        argv = [sys.executable, "-m", "snakemake", "-n", *args]
        if "--unlock" in args:
            return None
    try:
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=_env(),
                             timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"{' '.join(argv)}: timed out after {TIMEOUT} s"
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return f"{' '.join(argv[1:] if argv[0] == sys.executable else argv)}: exit code " \
               f"{out.returncode}: {' / '.join(tail)}"
    return None


def _failures(checks: dict[tuple, set[str]]) -> list[str]:
    """run_check on each check (two at a time), as "reason (in documents)" lines."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_check, checks))
    return [f"{r} (in {', '.join(sorted(checks[c]))})"
            for c, r in zip(checks, results, strict=True) if r]


def test_commands_are_found():
    found = commands()
    kinds = {k for k, _ in found}
    assert {"module", "script", "make", "snakemake"} <= kinds, kinds
    assert ("make", "smoke") in found and ("make", "test") in found
    assert ("module", "drama.train") in found


def test_readme_starts_with_smoke_and_test():
    """The README's first code block is the two commands a fresh clone runs (CI: `make test`)."""
    first = FENCE.search((ROOT / "README.md").read_text(encoding="utf-8")).group(1)
    lines = [line.split()[:2] for line in first.splitlines()]
    assert lines == [["make", "smoke"], ["make", "test"]]
    assert (ROOT / "README.md").stat().st_size < 8192


def exists(check: tuple) -> str | None:
    """The quick half of run_check: None if the module, script or make target exists."""
    kind, what = check
    if kind == "module":
        try:
            found = importlib.util.find_spec(what.split()[0])
        except ModuleNotFoundError:
            found = None
        return None if found else f"python -m {what}: no such module"
    if kind == "script":
        return None if (ROOT / what).is_file() else f"{what}: no such file"
    if kind == "make":
        return run_check(check)
    return None


def test_every_command_exists():
    """Fast lane: every module, script and make target the documents name exists."""
    found = commands()
    failures = [f"{r} (in {', '.join(sorted(found[c]))})" for c in found if (r := exists(c))]
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_every_command_runs_as_written():
    checks = {c: docs for c, docs in commands().items() if c[0] != "snakemake"}
    failures = _failures(checks)
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_every_snakemake_command_plans():
    checks = {c: docs for c, docs in commands().items() if c[0] == "snakemake"}
    failures = _failures(checks)
    assert not failures, "\n".join(failures)


def test_a_wrong_command_fails(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Run `python -m drama.trian --game Pong` or\n\n```bash\n"
                   "python benchmarks/no_such_bench.py --x 1\nmake no-such-target\n"
                   "snakemake --cores 1 --configfile config/no_such.yaml\n```\n")
    found = commands([doc])
    assert set(found) == {("module", "drama.trian"), ("script", "benchmarks/no_such_bench.py"),
                          ("make", "no-such-target"),
                          ("snakemake", ("--cores", "1", "--configfile", "config/no_such.yaml"))}
    assert all(exists(c) for c in found if c[0] != "snakemake")
    assert run_check(("snakemake", found_snakemake(found))) is not None
    assert run_check(("module", "drama.trian")) is not None
    assert run_check(("module", "analysis powr")) is not None  # a misspelt subcommand
    assert exists(("module", "drama.describe")) is None and exists(("make", "smoke")) is None


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation dropped, spaces
    to hyphens."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, re.M)}


def found_snakemake(found):
    return next(args for kind, args in found if kind == "snakemake")


def paths_named(path: Path) -> set[str]:
    """Repository paths named in a document's code and prose, and its relative links (resolved
    from the document's folder), as paths relative to the repository root."""
    text = path.read_text(encoding="utf-8")
    named = set()
    for link in LINK.findall(text):
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        name = os.path.relpath(file, ROOT)
        if anchor and file.suffix == ".md" and file.is_file() and anchor not in anchors(file):
            name += f"#{anchor} (no such heading)"
        named.add(name)
    words = re.findall(r"[\w./-]+(?:::\w+)?", " ".join(_texts(path)) + " " + FENCE.sub("", text))
    for word in words:
        word = word.split("::")[0].rstrip(".,;:")
        if word.startswith("./"):
            word = word[2:]
        top = word.split("/")[0]
        if (top in REPO_DIRS and "/" in word) or word in REPO_FILES:
            if not PLACEHOLDER.search(word) and not word.endswith("/."):
                named.add(word.rstrip("/"))
    return named


def test_every_named_path_exists():
    missing = [f"{p} (in {doc.relative_to(ROOT)})" for doc in DOCS for p in sorted(paths_named(doc))
               if not (ROOT / p).exists()]
    assert not missing, "\n".join(missing)


def test_a_wrong_path_fails(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("See `drama/no_such.py`, `results/runs/{settings}/{game}/` and `drama/train.py`;"
                   " [a](#no-such-heading), [b](#the-heading).\n\n## The heading\n")
    got = paths_named(doc)
    name = os.path.relpath(doc, ROOT)
    assert got == {"drama/no_such.py", "drama/train.py", name,
                   f"{name}#no-such-heading (no such heading)"}
    assert not (ROOT / "drama/no_such.py").exists()


if __name__ == "__main__":  # list what the test checks
    for check, docs in sorted(commands().items(), key=str):
        print(check, sorted(docs))
    sys.exit(pytest.main([__file__, "-q"]))
