#!/usr/bin/env bash
# The GPU check: everything a short GPU window should run, from one command (docs/gpu.md).
#
#   benchmarks/gpu_check.sh OUT_DIR                     # on the GPU machine (DEVICE=cuda)
#   DEVICE=cpu QUICK=1 benchmarks/gpu_check.sh OUT_DIR  # the same plumbing on a CPU, at reduced sizes
#
# Items, in this order, each under its own timeout and all under one deadline (DEADLINE_S), so the
# script ends in time; an item that fails is recorded and the next one runs:
#   wheels     installs .whl/*.whl into $SITE when .whl/ exists and `import gymnasium` fails
#   env        nvidia-smi, Python/torch/CUDA and package versions, carried wheels' requirements
#   imports    mbrl.agents / mbrl.dynamics importable from the working tree (no pip install)
#   cuda_graphs benchmarks/cuda_graphs_check.py: every graph-capable agent's update, eager against
#              cuda_graphs=true (agreement, speed-up); on a CPU it refuses, as it should
#   datasets   builds the built-in halfcheetah-medium and hopper-medium, checks their content hashes
#   smoke      every agent preset (configs/agent), every dynamics kind (configs/dynamics, with
#              agent=sac) and every transition filter (configs/filter, with agent=mopo) at scale=smoke
#              on halfcheetah-medium, the whole job with its evaluation, SMOKE_JOBS at a time; on a GPU
#              also four jobs with cuda_graphs=true
#   ravl       experiment=ravl_paper on hopper-medium for RAVL_UPDATES updates with its 50k-state
#              rollout rounds (plus RAVL_OVERRIDES, e.g. "cuda_graphs=true"); the steady-state time per
#              update, rollouts included, projects the published 3M-update run (its rows are written as
#              it goes, so a cut run still projects)
#   budget_start  (only when named in ONLY) starts, in the background, the published settings of each method in
#              BUDGET_METHODS (experiment=<method>_paper plus the per-task values of the dataset's D4RL
#              namesake, cuda_graphs=true on a GPU) on each dataset in BUDGET_DATASETS, at once, seed 0
#   resume     benchmarks/cuda_graphs_resume_check.py on the first of DATASETS: runs resumed with
#              cuda_graphs switched against the uninterrupted run (emulated graphs on a CPU)
#   budget     (only when named in ONLY) waits for budget_start's jobs, which stop themselves BUDGET_END_S
#              seconds before the deadline (SIGINT: a checkpoint, then exit), and copies their logs, curves
#              and configs (no checkpoints) to OUT/budget/<method>_<dataset>/, archived as OUT/budget.tar.gz
#   throughput benchmarks/throughput.py --quick --device $DEVICE, in what is left of the deadline; with
#              --reference-offlinerl-kit when a checkout is at .refs/OfflineRL-Kit (git-ignored; carried
#              to the machine with the tree): its ensemble fit and EDAC update against ours
# OUT_DIR gets six files: summary.md, results.json, log.txt, throughput.json, cuda_graphs.json, env.txt; with
# resume and budget also cuda_graphs_resume.json and budget.tar.gz (benchmarks/gpu_budget_report.py reads it).
#
# Environment: DEVICE (cuda), QUICK (0), PYTHON (python3), WORK (/tmp/mbrl_gpu_check: datasets,
# dynamics cache, runs), SITE (/tmp/site), WHEELS (.whl), DEADLINE_S (450 on cuda, 3600 on cpu),
# SMOKE_JOBS (8 on cuda, 2 on cpu), RAVL_UPDATES (4000; QUICK 150), RAVL_OVERRIDES (none), ONLY (items to run besides wheels, env
# and imports, e.g. ONLY="smoke ravl"; all but budget_start and budget when empty), DATASETS (the built-in
# datasets the datasets item builds: "halfcheetah-medium hopper-medium"), BUDGET_METHODS ("mopo mobile ravl td3bc"),
# BUDGET_DATASETS ("hopper-medium-replay halfcheetah-medium-replay"), BUDGET_FIT_EPOCHS (25), BUDGET_END_S (60).
set -u -o pipefail

OUT="${1:?usage: benchmarks/gpu_check.sh OUT_DIR}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
PYTHON="${PYTHON:-python3}"
WORK="${WORK:-/tmp/mbrl_gpu_check}"
SITE="${SITE:-/tmp/site}"
WHEELS="${WHEELS:-$REPO/.whl}"
if [[ "$DEVICE" == cpu ]]; then
    DEADLINE_S="${DEADLINE_S:-3600}" SMOKE_JOBS="${SMOKE_JOBS:-2}" SCALE_T=4
else
    DEADLINE_S="${DEADLINE_S:-450}" SMOKE_JOBS="${SMOKE_JOBS:-8}" SCALE_T=1
fi
if [[ "$QUICK" == 1 ]]; then RAVL_UPDATES="${RAVL_UPDATES:-150}"; else RAVL_UPDATES="${RAVL_UPDATES:-4000}"; fi
RAVL_OVERRIDES="${RAVL_OVERRIDES:-}"
ONLY="${ONLY:-}"
SMOKE_DATASET=halfcheetah-medium
RAVL_DATASET=hopper-medium
DATASETS="${DATASETS:-$SMOKE_DATASET $RAVL_DATASET}"
BUDGET_METHODS="${BUDGET_METHODS:-mopo mobile ravl td3bc}"
BUDGET_DATASETS="${BUDGET_DATASETS:-hopper-medium-replay halfcheetah-medium-replay}"
BUDGET_FIT_EPOCHS="${BUDGET_FIT_EPOCHS:-25}"
BUDGET_END_S="${BUDGET_END_S:-60}"
# A dynamics reward sized for a smoke job (scale presets cannot size it: filter=none has no such keys).
MOREC_SMOKE="filter.reward.rounds=300 filter.reward.snapshot_every=30"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
rm -rf "$WORK/runs" "$WORK/smoke" "$WORK/pkg"
mkdir -p "$WORK/runs" "$WORK/smoke" "$WORK/pkg/mbrl"
LOG="$OUT/log.txt"
ITEMS="$WORK/items.tsv"
: >"$LOG"
: >"$ITEMS"
START=$(date +%s)

# Every Python process below: the working tree's code, the carried wheels, private data and cache
# folders, and no current directory on sys.path (PYTHONSAFEPATH): a process started in the
# repository root (throughput.py's subprocess) would otherwise import the repository's mbrl/, which
# has no agents/ or dynamics/ inside, instead of the overlay in $WORK/pkg.
export PYTHONPATH="$WORK/pkg:$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 WANDB_MODE=disabled
export MINARI_DATASETS_PATH="$WORK/minari" MBRL_CACHE="$WORK/cache"
cd "$WORK" || exit 1

elapsed() { echo $(($(date +%s) - START)); }
note() { echo "[$(elapsed) s] $*" | tee -a "$LOG"; }

# The timeout an item gets: its own (scaled on CPU), cut to what is left before the deadline (less
# 20 s for the summary, and RESERVE_S: the budget item's time, while its jobs run); 0 when too little is left.
budget() {
    local want=$(($1 * SCALE_T)) left=$((DEADLINE_S - $(elapsed) - 20 - ${RESERVE_S:-0}))
    ((left < 15)) && echo 0 && return
    echo $((want < left ? want : left))
}

# item NAME TIMEOUT_S FUNCTION: run the (exported) function in a shell of its own under the timeout,
# its output into the log, one row into $ITEMS.
item() {
    local name=$1 t t0 rc status
    if [[ -n "$ONLY" && " wheels env imports $ONLY " != *" $name "* ]]; then
        return 0
    fi
    if [[ -z "$ONLY" && " budget_start budget " == *" $name "* ]]; then  # a long probe: only when asked for
        return 0
    fi
    t=$(budget "$2")
    if ((t == 0)); then
        note "$name: skipped, out of time"
        printf '%s\tskipped\t\t0\n' "$name" >>"$ITEMS"
        return 0
    fi
    note "$name (timeout ${t} s)"
    t0=$(date +%s)
    timeout --kill-after=10 "$t" bash -c "$3" >>"$LOG" 2>&1
    rc=$?
    case $rc in 0) status=ok ;; 124 | 137) status=timeout ;; *) status=failed ;; esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(($(date +%s) - t0))" >>"$ITEMS"
    note "$name: $status (exit $rc, $(($(date +%s) - t0)) s)"
}

# -- env: nvidia-smi and versions ------------------------------------------------------------------
env_item() {
    {
        echo "# nvidia-smi"
        if command -v nvidia-smi >/dev/null; then
            nvidia-smi
            nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
        else
            echo "(no nvidia-smi on this machine)"
        fi
        echo
        echo "# machine"
        uname -a
        nproc
        echo
        echo "# versions (JSON)"
        "$PYTHON" "$REPO/benchmarks/gpu_check_report.py" versions "$REPO" "$SITE"
    } >"$OUT/env.txt" 2>&1
}

# -- wheels and imports -----------------------------------------------------------------------------
wheels_item() {
    if "$PYTHON" -c "import gymnasium" 2>/dev/null; then
        echo "gymnasium imports already: nothing to install"
        return 0
    fi
    if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "no wheels in $WHEELS and gymnasium is missing (make them with benchmarks/gpu_wheels.sh)"
        return 1
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$WHEELS"/*.whl && "$PYTHON" -c "import gymnasium, mujoco, minari, hydra, omegaconf; print('installed')"
}

# mbrl.agents and mbrl.dynamics live in agents/ and dynamics/ (package_dir in setup.cfg). Without an
# install, $WORK/pkg/mbrl/__init__.py stands in for the package: it looks submodules up in the tree's
# mbrl/ and in $WORK/pkg/mapped, which holds two links, agents and dynamics, and runs the tree's
# mbrl/__init__.py. Files added to the tree later are found too; modules find their configs and data
# through their own __file__, which is in the tree.
overlay() {
    mkdir -p "$WORK/pkg/mbrl" "$WORK/pkg/mapped"
    ln -sfn "$REPO/agents" "$WORK/pkg/mapped/agents"
    ln -sfn "$REPO/dynamics" "$WORK/pkg/mapped/dynamics"
    "$PYTHON" - "$REPO" "$WORK/pkg" <<'EOF'
import sys
from pathlib import Path

repo, pkg = Path(sys.argv[1]), Path(sys.argv[2])
(pkg / "mbrl" / "__init__.py").write_text(
    '"""mbrl as setup.cfg installs it, from the working tree (written by benchmarks/gpu_check.sh)."""\n'
    f"__path__ = [{str(repo / 'mbrl')!r}, {str(pkg / 'mapped')!r}]\n"
    f"__file__ = {str(repo / 'mbrl' / '__init__.py')!r}\n"
    "with open(__file__) as _f:\n"
    '    exec(compile(_f.read(), __file__, "exec"))\n'
)
EOF
}
imports_item() {
    "$PYTHON" -c "
import mbrl.agents.sac, mbrl.dynamics.ensemble, mbrl.train
from mbrl.agents import AGENTS
from mbrl.config import CONFIG_DIR
print('mbrl.agents.sac from', mbrl.agents.sac.__file__)
print('mbrl.dynamics.ensemble from', mbrl.dynamics.ensemble.__file__)
print('configs from', CONFIG_DIR, '; agents:', ', '.join(AGENTS.names()))
assert CONFIG_DIR.is_dir(), CONFIG_DIR
"
}

# -- cuda_graphs: graphed against eager updates -----------------------------------------------------
cuda_graphs_item() {
    # As a script: it needs no dataset (synthetic batches); exit 2 is its refusal without a GPU.
    "$PYTHON" "$REPO/benchmarks/cuda_graphs_check.py" --out "$OUT/cuda_graphs.json"
    local rc=$?
    if [[ "$DEVICE" == cpu && $rc == 2 ]]; then
        echo "cuda_graphs_check refused to run without a GPU, as it should on DEVICE=cpu"
        return 0
    fi
    return $rc
}

# -- datasets -----------------------------------------------------------------------------------------
datasets_item() {
    # Both at once (each is one process); one that fails, e.g. on a race creating Minari's shared
    # namespace folder, is built again alone.
    local name failed=()
    declare -A pid
    for name in $DATASETS; do
        "$PYTHON" -m mbrl.data.make_dataset "$name" &
        pid[$name]=$!
    done
    for name in "${!pid[@]}"; do
        wait "${pid[$name]}" || failed+=("$name")
    done
    for name in "${failed[@]}"; do
        echo "building $name again"
        "$PYTHON" -m mbrl.data.make_dataset "$name" || return 1
    done
    # shellcheck disable=SC2086 # dataset names, split on purpose
    "$PYTHON" "$REPO/benchmarks/gpu_check_report.py" datasets $DATASETS >"$WORK/datasets.json" || return 1
    cat "$WORK/datasets.json"
}

# -- smoke: every agent preset and dynamics kind ------------------------------------------------------
smoke_one() {  # NAME OVERRIDES...: one job; writes $WORK/smoke/NAME.status (status rc seconds)
    local name=$1 t0 rc status t
    t0=$(date +%s)
    shift
    t=$(budget 150)
    if ((t == 0)); then
        printf 'skipped\t\t0\n' >"$WORK/smoke/$name.status"
        return
    fi
    timeout --kill-after=10 "$t" "$PYTHON" -m mbrl.train "$@" scale=smoke "device=$DEVICE" "dataset=$SMOKE_DATASET" \
        logger.progress=false "hydra.run.dir=$WORK/runs/smoke_$name" >"$WORK/smoke/$name.log" 2>&1
    rc=$?
    case $rc in 0) status=ok ;; 124 | 137) status=timeout ;; *) status=failed ;; esac
    printf '%s\t%s\t%s\n' "$status" "$rc" "$(($(date +%s) - t0))" >"$WORK/smoke/$name.status"
}
smoke_item() {
    local f name jobs=()
    for f in "$REPO"/configs/agent/*.yaml; do
        name=$(basename "$f" .yaml)
        jobs+=("agent_$name agent=$name")
    done
    for f in "$REPO"/configs/dynamics/*.yaml; do
        name=$(basename "$f" .yaml)
        jobs+=("dynamics_$name agent=sac dynamics=$name")
    done
    for f in "$REPO"/configs/filter/*.yaml; do  # beyond the presets: the transition filters (MOREC's)
        name=$(basename "$f" .yaml)
        [[ "$name" != none ]] && jobs+=("filter_$name agent=mopo filter=$name $MOREC_SMOKE")
    done
    if [[ "$DEVICE" != cpu ]]; then  # jobs with cuda_graphs=true (refused on a CPU): graphed updates
        jobs+=(
            "graphs_ravl agent=ravl cuda_graphs=true"
            "graphs_td3bc agent=td3bc cuda_graphs=true"
            "graphs_combo agent=combo cuda_graphs=true"
            "graphs_morec agent=mopo filter=reward_consistency cuda_graphs=true $MOREC_SMOKE"
        )
    fi
    local job
    for job in "${jobs[@]}"; do
        while (($(jobs -rp | wc -l) >= SMOKE_JOBS)); do wait -n; done
        # shellcheck disable=SC2086 # the job line is a name and overrides without spaces
        smoke_one $job &
    done
    wait
    local failed=0
    for job in "${jobs[@]}"; do
        name=${job%% *}
        echo "== $name: $(tr '\t' ' ' <"$WORK/smoke/$name.status")"
        if ! grep -q '^ok' "$WORK/smoke/$name.status"; then
            failed=1
            tail -n 30 "$WORK/smoke/$name.log"
        fi
    done
    return $failed
}

# -- throughput ----------------------------------------------------------------------------------------
throughput_item() {
    local extra=()
    if [[ "$QUICK" == 1 ]]; then  # CPU plumbing run: one round, no fast-path or growth sections
        extra=(--rounds 1 --skip fast_paths growth)
    elif (($(budget 240) < 150)); then  # late: the growth section (subprocesses) would not fit
        echo "less than 150 s left: without the growth section"
        extra=(--skip growth)
    fi
    local ref="$REPO/.refs/OfflineRL-Kit"
    if [[ -d "$ref/offlinerlkit" ]]; then  # its commit is read with git, as the side-by-side records it
        if git -C "$ref" rev-parse HEAD >/dev/null 2>&1; then
            extra+=(--reference-offlinerl-kit "$ref")
        else
            echo "$ref is no readable git checkout (no git, or .git not carried): without OfflineRL-Kit"
        fi
    fi
    # As a script, not -m: a regular package named "benchmarks" elsewhere on sys.path cannot shadow it.
    "$PYTHON" "$REPO/benchmarks/throughput.py" --quick --device "$DEVICE" "${extra[@]}" --out "$OUT/throughput.json"
}

# -- RAVL at the published setting ---------------------------------------------------------------------
ravl_item() {
    local args=(experiment=ravl_paper "dataset=$RAVL_DATASET" "device=$DEVICE" "total_updates=$RAVL_UPDATES"
        logger.progress=false "hydra.run.dir=$WORK/runs/ravl"
        # The fit is cached per dataset and config, and not what is projected: cap it at 10 epochs.
        dynamics.max_epochs=10
        # 100 final episodes is the published evaluation; 10 show the vectorised evaluation works.
        final_eval_episodes=10)
    # shellcheck disable=SC2206 # overrides without spaces, split on purpose
    args+=($RAVL_OVERRIDES)
    if [[ "$QUICK" == 1 ]]; then
        args+=(log_every=50 rollout.every=50 rollout.batch_size=2000 dynamics.max_epochs=2
            dynamics.max_train_steps_per_epoch=20 final_eval_episodes=2)
    fi
    local smi=""
    if command -v nvidia-smi >/dev/null; then  # GPU utilisation and memory while it runs, every second
        nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 \
            >"$WORK/ravl_smi.csv" 2>/dev/null &
        smi=$!
    fi
    "$PYTHON" -m mbrl.train "${args[@]}"
    local rc=$?
    [[ -n "$smi" ]] && kill "$smi" 2>/dev/null
    return $rc
}

# -- resume: switching cuda_graphs across a resume ------------------------------------------------------
resume_item() {
    local extra=()
    [[ "$DEVICE" == cpu ]] && extra+=(--emulate)
    [[ "$QUICK" == 1 ]] && extra+=(--updates 40)
    "$PYTHON" "$REPO/benchmarks/cuda_graphs_resume_check.py" --dataset "${DATASETS%% *}" --device "$DEVICE" \
        "${extra[@]}" --out "$OUT/cuda_graphs_resume.json"
}

# -- budget: the published settings for as long as the window allows ---------------------------------------
budget_start_item() {
    # Each job stops itself (SIGINT: checkpoint, exit) BUDGET_END_S before the deadline; the budget item waits.
    local stop=$((DEADLINE_S - $(elapsed) - BUDGET_END_S)) name m d task extra=()
    ((stop < 30)) && echo "too little time left for the budget jobs" && return 1
    if [[ "$DEVICE" == cpu ]]; then
        [[ "$QUICK" == 1 ]] && extra=(rollout.batch_size=2000 dynamics.max_train_steps_per_epoch=20 eval_every=200
            eval_episodes=2 log_every=50)
    else
        extra=(cuda_graphs=true)
        if command -v nvidia-smi >/dev/null; then
            nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 2 \
                >"$WORK/budget_smi.csv" 2>/dev/null &
            echo $! >"$WORK/budget_smi.pid"
        fi
    fi
    # One line per job: its name and the method's published per-task values for the dataset's D4RL namesake
    # (none for RAVL), as the headline benchmark adds them; one Python process for all of them.
    "$PYTHON" - "$BUDGET_METHODS" "$BUDGET_DATASETS" >"$WORK/budget_tasks.txt" <<'EOF2' || return 1
import sys

from mbrl.config import published_task_overrides

for d in sys.argv[2].split():
    for m in sys.argv[1].split():
        print(f"{m}_{d}", m, d, *published_task_overrides(m, d))
EOF2
    : >"$WORK/budget_jobs.txt"
    while read -r name m d task; do
        # shellcheck disable=SC2206 # overrides without spaces, split on purpose
        local args=("experiment=${m}_paper" $task "dataset=$d" "device=$DEVICE" seed=0 threads=2
            "dynamics.max_epochs=$BUDGET_FIT_EPOCHS" logger.progress=false "${extra[@]}")
        echo "$name ${args[*]}" | tee -a "$WORK/budget_jobs.txt"
        budget_job "$name" "$stop" "${args[@]}" </dev/null >/dev/null 2>&1 &
        disown
    done <"$WORK/budget_tasks.txt"
}
budget_job() {  # NAME STOP_S OVERRIDES...: a graphed job that fails runs again eagerly for the time left
    local name=$1 stop=$2 t0 rc
    shift 2
    t0=$(date +%s)
    timeout -s INT --kill-after=20 "$stop" "$PYTHON" -m mbrl.train "$@" "hydra.run.dir=$WORK/runs/budget/$name" \
        >"$WORK/runs/budget_$name.log" 2>&1
    rc=$?
    if [[ $rc != 0 && $rc != 124 && " $* " == *" cuda_graphs=true "* ]]; then
        local left=$((stop - ($(date +%s) - t0)))
        echo "graphed job failed (exit $rc); eagerly for ${left} s" >>"$WORK/runs/budget_$name.log"
        mv "$WORK/runs/budget/$name" "$WORK/runs/budget/${name}_graphed_failed"
        ((left > 30)) && timeout -s INT --kill-after=20 "$left" "$PYTHON" -m mbrl.train "${@/cuda_graphs=true/cuda_graphs=false}" \
            "hydra.run.dir=$WORK/runs/budget/$name" >>"$WORK/runs/budget_$name.log" 2>&1
        rc=$?
    fi
    echo "$rc" >"$WORK/runs/budget_$name.rc"
}
budget_item() {
    local name f dest
    # Every job writes its exit status last (after an eager retry, if any).
    while read -r name _; do
        while [[ ! -f "$WORK/runs/budget_$name.rc" ]]; do sleep 2; done
    done <"$WORK/budget_jobs.txt"
    [[ -f "$WORK/budget_smi.pid" ]] && kill "$(cat "$WORK/budget_smi.pid")" 2>/dev/null
    mkdir -p "$OUT/budget"
    cp "$WORK/budget_jobs.txt" "$OUT/budget/jobs.txt"
    [[ -f "$WORK/budget_smi.csv" ]] && cp "$WORK/budget_smi.csv" "$OUT/budget/smi.csv"
    for f in "$WORK"/runs/budget/*/; do
        name=$(basename "$f")
        dest="$OUT/budget/$name"
        mkdir -p "$dest"
        find "$f" -maxdepth 2 -type f \( -name '*.csv' -o -name '*.json' -o -name '*.yaml' -o -name '*.log' \
            -o -name '*.txt' \) -size -5M -exec cp {} "$dest/" \;
        tail -c 20000 "$WORK/runs/budget_$name.log" 2>/dev/null | tr '\r' '\n' >"$dest/stdout_tail.txt"
        cp "$WORK/runs/budget_$name.rc" "$dest/rc.txt" 2>/dev/null
        echo "== $name: exit $(cat "$dest/rc.txt" 2>/dev/null); last eval: $(tail -n 1 "$dest/eval.csv" 2>/dev/null | cut -d, -f1-4)"
    done
    # One file: a window brings back a limited number of files, and the jobs' folders hold about a hundred.
    tar -czf "$OUT/budget.tar.gz" -C "$OUT" budget && rm -rf "$OUT/budget"
}

summary() {
    "$PYTHON" "$REPO/benchmarks/gpu_check_report.py" summary "$OUT" "$WORK" "$DEVICE" "$QUICK" "$RAVL_UPDATES" \
        "$(elapsed)"
}
trap 'summary >>"$LOG" 2>&1' EXIT

# -- run ---------------------------------------------------------------------------------------------
export REPO OUT WORK SITE WHEELS DEVICE QUICK PYTHON LOG START DEADLINE_S SCALE_T SMOKE_JOBS RAVL_UPDATES RAVL_OVERRIDES
export SMOKE_DATASET RAVL_DATASET MOREC_SMOKE DATASETS BUDGET_METHODS BUDGET_DATASETS BUDGET_FIT_EPOCHS BUDGET_END_S
export -f elapsed budget env_item wheels_item imports_item cuda_graphs_item datasets_item smoke_one smoke_item \
    throughput_item ravl_item resume_item budget_start_item budget_job budget_item

# While the budget jobs run, the items between them and the budget item leave it the jobs' last BUDGET_END_S.
if [[ " $ONLY " == *" budget "* ]]; then RESERVE_S=$BUDGET_END_S; else RESERVE_S=0; fi
export RESERVE_S
note "gpu_check: DEVICE=$DEVICE QUICK=$QUICK PYTHON=$PYTHON WORK=$WORK deadline ${DEADLINE_S} s"
overlay
item wheels 120 wheels_item
item env 60 env_item
item imports 60 imports_item
item cuda_graphs 120 cuda_graphs_item
item datasets 240 datasets_item
item smoke 300 smoke_item
item budget_start 60 budget_start_item
item resume 180 resume_item
item ravl 180 ravl_item
RESERVE_S=0 item budget 900 budget_item
item throughput 240 throughput_item
note "done"
