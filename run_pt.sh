#!/usr/bin/env bash
# Continued pretraining launcher (torchrun). Edit the variables below, or set them in the environment.
#
#   bash run_pt.sh                                         # this machine, every GPU (or 2 CPU processes)
#   DS_CONFIG=zero3.json bash run_pt.sh --max_steps 1000   # ZeRO-3; extra flags go to pretraining.py
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_pt.sh   # on host 1 of 2
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash run_pt.sh   # on host 2 of 2
#
# Runs that survive: a crashed or killed worker makes torchrun restart the group (MAX_RESTARTS times),
# which resumes from the latest complete checkpoint (--resume_from_checkpoint auto). SIGTERM or SIGUSR1
# (what Slurm and Kubernetes send before killing) makes every rank finish its step and save a
# checkpoint; the script then exits with 143 ("preempted, resume me": run the same command again).
set -euo pipefail
# Relative paths (DATA, OUTPUT_DIR, DS_CONFIG, flags) are the caller's: this script does not change directory.
HERE="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's medtrain

# --- what to train --------------------------------------------------------------------------------
MODEL=${MODEL:-}                      # e.g. Qwen/Qwen2.5-0.5B or a local path; empty (with empty DATA): the tiny demo
DATA=${DATA:-}                        # directories/files, or prepared token stores (space separated); empty: the demo data
OUTPUT_DIR=${OUTPUT_DIR:-outputs/pt}
BLOCK_SIZE=${BLOCK_SIZE:-1024}
DS_CONFIG=${DS_CONFIG:-}              # zero2.json, zero3.json, or empty for plain DDP

# --- where to run ---------------------------------------------------------------------------------
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
if [ -z "${NPROC_PER_NODE:-}" ]; then  # one process per visible GPU, else 2 CPU processes
  NPROC_PER_NODE=$(python -c "import torch; print(torch.cuda.device_count() or 2)")
fi

# --- surviving failures ---------------------------------------------------------------------------
MAX_RESTARTS=${MAX_RESTARTS:-3}       # torchrun restarts the group this often after a crash (never after preemption)
RESUME=${RESUME:-auto}                # --resume_from_checkpoint: auto (latest complete one, else fresh), a path, false
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-300}  # seconds the workers get to finish their step and save after SIGTERM/SIGUSR1
# c10d: the nodes meet at MASTER_ADDR:MASTER_PORT, and again after a restart, with a fresh store each time
# (torch's static rendezvous keeps its store across restarts, and stale keys can break the restarted group);
# rank 0 goes to the node that the rendezvous picks (NODE_RANK is not used). static: NODE_RANK fixes the
# ranks, but restarts are unreliable.
RDZV_BACKEND=${RDZV_BACKEND:-c10d}

args=(--output_dir "$OUTPUT_DIR" --block_size "$BLOCK_SIZE" --resume_from_checkpoint "$RESUME")
[ -n "$DATA" ] && args+=(--train_file_dir $DATA)
[ -n "$MODEL" ] && args+=(--model_name_or_path "$MODEL")
if [ -n "$DS_CONFIG" ]; then  # the caller's file, else one shipped next to this script (zero2.json, zero3.json)
  [ ! -e "$DS_CONFIG" ] && [ -e "$HERE/$DS_CONFIG" ] && DS_CONFIG="$HERE/$DS_CONFIG"
  args+=(--deepspeed "$DS_CONFIG")
fi

# The launcher (medtrain/resilience.py) runs torchrun, passes SIGTERM/SIGUSR1 on to it (torchrun passes them
# on to the workers), and exits with 143 when the workers stopped for preemption, 2 for bad input (torchrun
# itself exits 1 for any failure).
export NNODES NODE_RANK MASTER_ADDR MASTER_PORT NPROC_PER_NODE MAX_RESTARTS SHUTDOWN_TIMEOUT RDZV_BACKEND
exec python -m medtrain.resilience "$HERE/pretraining.py" "${args[@]}" "$@"
