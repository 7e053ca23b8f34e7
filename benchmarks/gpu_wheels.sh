#!/usr/bin/env bash
# Download into .whl/ every wheel that the GPU machine lacks for this package and its tests, so that
# benchmarks/gpu_check.sh can install them there with no network (docs/gpu.md).
#
#   benchmarks/gpu_wheels.sh                                  # CPython 3.12 x86-64 wheels into .whl/
#   PY_VERSION=3.11 DEST=/tmp/whl311 benchmarks/gpu_wheels.sh # the same set for another interpreter
#
# The list is the dependency closure of setup.cfg (install_requires and the dev extra, markers
# evaluated for Linux x86-64 and PY_VERSION), each pinned to the version installed in .venv
# (`.venv/bin/pip freeze`), minus what the GPU machine's image already has (IMAGE_PACKAGES below).
# A package that has no wheel on the index (antlr4-python3-runtime 4.9.3 is an sdist only) is built
# into a wheel here; only pure-Python ones can be, and anything else stops the script.
# Finally it checks that the wheels, the working tree and the git-ignored reference checkouts in .refs/
# (benchmarks/gpu_check.sh times OfflineRL-Kit from .refs/OfflineRL-Kit) fit the 64 MiB that travel.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_PY="${VENV_PY:-$ROOT/.venv/bin/python}"
DEST="${DEST:-$ROOT/.whl}"
PY_VERSION="${PY_VERSION:-3.12}"
LIMIT_MIB=64

# Python packages in the GPU machine's image ('cuda' image, read 2026-11-17); normalised names. Not
# carried: they are there, with versions of their own (gpu_check.sh checks that they satisfy the
# carried wheels' requirements).
IMAGE_PACKAGES="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite
lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas
nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink
nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks
pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn
scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash
yarl zipp"

# Left out on purpose (name: why). Each would otherwise be carried.
EXCLUDED="wandb: 20 MB, imported only with logger=wandb; with it the wheels and the tree exceed 64 MiB
mujoco-studio: 13 MB, MuJoCo's interactive viewer; import mujoco and the simulator do not load it
ruff: the linter, which no test runs"

mkdir -p "$DEST"
LIST="$(mktemp)"
trap 'rm -f "$LIST"' EXIT

# The closure, one "name==version" per line; what is skipped goes to stderr.
IMAGE_PACKAGES="$IMAGE_PACKAGES" EXCLUDED="$EXCLUDED" PY_VERSION="$PY_VERSION" "$VENV_PY" - "$ROOT/setup.cfg" >"$LIST" <<'EOF'
import configparser
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


image = {norm(n) for n in os.environ["IMAGE_PACKAGES"].split()}
excluded = {norm(line.split(":")[0]) for line in os.environ["EXCLUDED"].splitlines() if line.strip()}
py = os.environ["PY_VERSION"]
env = {
    "python_version": py,
    "python_full_version": f"{py}.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}

cfg = configparser.ConfigParser()
cfg.read(sys.argv[1])


def lines(text: str) -> list[str]:
    return [ln.split("#")[0].strip() for ln in text.splitlines() if ln.split("#")[0].strip()]


todo = [Requirement(r) for r in lines(cfg["options"]["install_requires"])]
todo += [Requirement(r) for r in lines(cfg["options.extras_require"]["dev"])]
pins: dict[str, str] = {}
skipped: set[str] = set()
seen: set[tuple[str, frozenset[str]]] = set()
while todo:
    req = todo.pop()
    name = norm(req.name)
    if name in image or name in excluded:
        skipped.add(f"{name} ({'in the image' if name in image else 'left out'})")
        continue
    key = (name, frozenset(req.extras))
    if key in seen:
        continue
    seen.add(key)
    try:
        dist = distribution(req.name)
    except PackageNotFoundError:
        sys.exit(f"{req.name} is needed but not installed in .venv: install it there first (pip install -e '.[dev]')")
    if not req.specifier.contains(dist.version, prereleases=True):
        sys.exit(f".venv has {req.name} {dist.version}, which does not satisfy {req}")
    pins[name] = dist.version
    for text in dist.requires or []:
        sub = Requirement(text)
        extras = req.extras or {""}
        if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in extras):
            todo.append(sub)
for name in sorted(pins):
    print(f"{name}=={pins[name]}")
print(f"not carried: {', '.join(sorted(skipped))}", file=sys.stderr)
EOF

echo "wheels for CPython $PY_VERSION (Linux x86-64): $(wc -l <"$LIST") packages"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
    manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
PYTAG="${PY_VERSION/./}"
keep=()
while read -r pin; do
    name="${pin%%==*}"
    version="${pin##*==}"
    # Wheel file names spell the project with underscores; match either spelling, any case.
    pattern="$(echo "$name" | sed 's/[-_.]/[-_.]/g')-$version-"
    have="$(find "$DEST" -maxdepth 1 -iname "*.whl" | grep -iE "/${pattern}(py|cp${PYTAG}|cp3)" | head -1 || true)"
    if [[ -z "$have" ]]; then
        if ! "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
            --implementation cp "${PLATFORMS[@]}" -d "$DEST" "$pin" 2>/dev/null; then
            echo "  $pin: no wheel on the index, building one"
            "$VENV_PY" -m pip wheel -q --no-deps -w "$DEST" "$pin" 2>&1 | grep -v "is ignored: it is neither" || true
        fi
        have="$(find "$DEST" -maxdepth 1 -iname "*.whl" | grep -iE "/${pattern}" | head -1)"
    fi
    # Tags of name-version[-build]-python-abi-platform.whl: py3 or cp3XX (or an abi3 wheel), any or x86-64.
    IFS=- read -r -a tags <<<"$(basename "$have" .whl)"
    n=${#tags[@]}
    if ! [[ ".${tags[n - 3]}." =~ \.(py3|cp$PYTAG)\. || "${tags[n - 2]}" == abi3 ]] ||
        ! [[ "${tags[n - 1]}" == any || "${tags[n - 1]}" == *x86_64* ]]; then
        echo "error: $(basename "$have") does not run on CPython $PY_VERSION on Linux x86-64" >&2
        exit 1
    fi
    keep+=("$(basename "$have")")
done <"$LIST"

# One version of each package: a stale wheel beside a new one would stop the install.
for f in "$DEST"/*.whl; do
    if ! printf '%s\n' "${keep[@]}" | grep -qxF "$(basename "$f")"; then
        echo "  removing stale $(basename "$f")"
        rm -f "$f"
    fi
done

echo "left out on purpose:"
echo "$EXCLUDED" | sed 's/^/  /'
wheels=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
cd "$ROOT"
tree=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null || true) |
    awk '{s += $1} END {print s + 0}')
refs=0
if [[ -d .refs ]]; then  # ignored by git, so not in the tree's count, but carried to the machine
    refs=$(du -sb .refs | cut -f1)
fi
total=$((wheels + tree + refs))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
printf '%-40s %6s MiB\n' "wheels (${#keep[@]}) in ${DEST#"$ROOT"/}" "$(mib "$wheels")" \
    "working tree (tracked + untracked)" "$(mib "$tree")" "reference checkouts in .refs/" "$(mib "$refs")" \
    "together (limit $LIMIT_MIB MiB)" "$(mib "$total")"
if ((total > LIMIT_MIB * 1048576)); then
    echo "error: over the $LIMIT_MIB MiB that travel to the GPU machine" >&2
    exit 1
fi
if [[ "$DEST" == "$ROOT/.whl" ]] && ! git check-ignore -q .whl; then
    echo "warning: .whl/ is not git-ignored, so it would also count as untracked files" >&2
fi
