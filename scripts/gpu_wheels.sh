#!/usr/bin/env bash
# Collect, on a machine with network, every wheel a GPU machine without network needs to run
# this project's GPU tests and a training run; checks that the set is complete.
set -euo pipefail

MAMBA_SSM=2.3.2.post1
# Exact versions: the ones the CPU test suite passes with.
IMAGE_WHEELS=(gymnasium==1.4.0 farama-notifications==0.0.4 ale-py==0.12.1)
ALL_WHEELS=("${IMAGE_WHEELS[@]}" opencv-python-headless "pandas>=2.0,<3" pyarrow pyyaml einops
            tqdm jsonschema pytest pytest-timeout transformers huggingface-hub packaging)

usage() {
    cat <<EOF
usage: scripts/gpu_wheels.sh [--all] DIR

Puts into DIR (e.g. .whl, which .gitignore ignores) the wheels for Python 3.12 on Linux x86-64
that a GPU machine without network needs, on top of what it has, to run
'pytest -m gpu' and 'python -m drama.train' with the Mamba-2 kernels:

  mamba-ssm $MAMBA_SSM   built here as a pure-Python wheel (MAMBA_SKIP_CUDA_BUILD=TRUE,
                         MAMBA_FORCE_BUILD=TRUE, --no-build-isolation: its setup.py imports
                         torch, so this needs a python with torch; a CPU build is fine). Mamba-2
                         then runs on mamba-ssm's Triton kernels; Mamba-1's compiled
                         selective_scan_cuda is absent (Mamba-1 uses the torch backend).
  default                the wheels missing from a GPU image that already has Python 3.12, torch
                         2.11 + CUDA 13, triton 3.6, numpy, pandas, pyarrow, opencv, pyyaml,
                         einops, transformers, huggingface-hub, pytest, pytest-timeout, tqdm:
                         ${IMAGE_WHEELS[*]}
  --all                  for a machine with only Python 3.12, CUDA torch and triton: also
                         ${ALL_WHEELS[*]:${#IMAGE_WHEELS[@]}}
                         and their dependencies (52 wheels, 172 MiB; e.g. for a cluster node
                         without network).

Not included: causal-conv1d (a compiled CUDA extension: build it on the GPU machine with
CAUSAL_CONV1D_FORCE_BUILD=TRUE TORCH_CUDA_ARCH_LIST=9.0 pip install --no-build-isolation, or go
without: the Mamba-2 kernel path then uses torch's conv1d); mamba-ssm's Requires-Dist entries
tilelang, apache-tvm-ffi and quack-kernels (only its Mamba-3 code imports them, inside
try/except ImportError) and ninja (builds only).

At the end every wheel's Requires-Dist (for CPython 3.12, Linux x86-64) is checked against the
wheels in DIR and the packages the target provides; a missing one is an error.

Install there (no network, no compiling, nothing of the image replaced):
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
      --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site

For a short GPU check there, also export MAMBA_DETERMINISTIC=1 before Python starts: mamba-ssm
then uses one configuration per Triton kernel instead of autotuning up to 201 at first calls
(docs/install.md, "GPU install and the first GPU run"); tests/test_sequence_gpu.py sets it itself.

Environment: PYTHON builds mamba-ssm and runs pip (default: the first of .venv/bin/python,
python3, python that imports torch).
EOF
}

profile=image
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --all) profile=all ;;
        -*) echo "gpu_wheels.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) [ -z "$dir" ] || { echo "gpu_wheels.sh: one DIR only" >&2; exit 2; }; dir="$1" ;;
    esac
    shift
done
[ -n "$dir" ] || { usage >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then  # the first of these that has torch
    for candidate in "$root/.venv/bin/python" python3 python; do
        if "$candidate" -c "import torch" 2>/dev/null; then py="$candidate"; break; fi
    done
fi
if [ -z "$py" ] || ! "$py" -c "import torch" 2>/dev/null; then
    echo "gpu_wheels.sh: no python with torch found; mamba-ssm's setup.py needs it (a CPU build" \
         "is fine). Set PYTHON=/path/to/python-with-torch." >&2
    exit 2
fi
mkdir -p "$dir"

# 1. mamba-ssm as a pure-Python wheel (PyPI has only its sdist)
if ! ls "$dir"/mamba_ssm-"$MAMBA_SSM"-py3-none-any.whl >/dev/null 2>&1; then
    echo "== building mamba-ssm $MAMBA_SSM (pure Python, no CUDA extension)"
    MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE "$py" -m pip wheel -q --no-build-isolation \
        --no-deps -w "$dir" "mamba-ssm==$MAMBA_SSM"
fi

# 2. binary wheels for CPython 3.12 on manylinux x86-64
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
target=(--only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d "$dir")
if [ "$profile" = image ]; then
    echo "== downloading ${IMAGE_WHEELS[*]}"
    "$py" -m pip download -q --no-deps "${target[@]}" "${IMAGE_WHEELS[@]}"
else
    echo "== downloading ${ALL_WHEELS[*]} and their dependencies"
    "$py" -m pip download -q "${target[@]}" "${ALL_WHEELS[@]}"
fi

# 3. completeness: every requirement is a wheel here or provided by the target
"$py" - "$dir" "$profile" <<'PY'
import sys
import zipfile
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
except ImportError:  # pip's vendored copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename

wheel_dir, profile = Path(sys.argv[1]), sys.argv[2]
TORCH = {"torch", "triton", "filelock", "typing-extensions", "sympy", "networkx", "jinja2",
         "fsspec", "setuptools", "markupsafe", "mpmath"}  # torch's own, present with it
IMAGE = TORCH | {  # the GPU image of the default target, the names this check meets
    "numpy", "cloudpickle", "packaging", "einops", "transformers", "huggingface-hub", "pandas",
    "pyarrow", "opencv-python-headless", "pyyaml", "tqdm", "pytest", "pytest-timeout",
    "jsonschema", "attrs", "requests", "regex", "tokenizers", "safetensors", "ninja"}
NOT_NEEDED = {  # mamba-ssm 2.3.2.post1's Requires-Dist that this project never imports
    "tilelang": "Mamba-3 (TileLang kernels), imported inside try/except ImportError",
    "apache-tvm-ffi": "tilelang's dependency",
    "quack-kernels": "Mamba-3 CuTe step kernel, imported inside try/except ImportError",
    "ninja": "only for compiling the CUDA extensions",
}
provided = TORCH if profile == "all" else IMAGE
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython",
       "extra": ""}
have = {}
for whl in sorted(wheel_dir.glob("*.whl")):
    name, version, _, _ = parse_wheel_filename(whl.name)
    if name in have:
        sys.exit(f"gpu_wheels.sh: two versions of {name} in {wheel_dir}; keep one")
    have[name] = (version, whl)
problems, skipped = [], set()
for name, (version, whl) in have.items():
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        dep = canonicalize_name(req.name)
        if dep in have:
            if req.specifier and not req.specifier.contains(have[dep][0], prereleases=True):
                problems.append(f"{name} needs {req}, {wheel_dir} has {dep} {have[dep][0]}")
        elif dep in NOT_NEEDED and name == "mamba-ssm":
            skipped.add(f"{dep} ({NOT_NEEDED[dep]})")
        elif dep not in provided:
            problems.append(f"{name} needs {req}: not in {wheel_dir} and not on the target")
for s in sorted(skipped):
    print(f"   not included on purpose: {s}")
if problems:
    sys.exit("gpu_wheels.sh: incomplete:\n  " + "\n  ".join(problems))
total = sum(w.stat().st_size for _, w in have.values())
print(f"== {len(have)} wheels in {wheel_dir}, {total / 2**20:.1f} MiB, requirements complete "
      f"for the {'bare torch+triton' if profile == 'all' else 'device image'} target")
if total > 60 * 2**20:
    print("   warning: over 60 MiB; too big where the transfer to the GPU machine is capped at 64 MiB")
PY
