#!/usr/bin/env bash
# Continued pretraining launcher (torchrun). Edit the variables below, or set them in the environment.
#
#   bash run_pt.sh                                         # this machine, every GPU (or 2 CPU processes)
#   DS_CONFIG=zero3.json bash run_pt.sh --max_steps 1000   # ZeRO-3; extra flags go to pretraining.py
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_pt.sh   # on host 1 of 2
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash run_pt.sh   # on host 2 of 2
set -euo pipefail
cd "$(dirname "$0")"

# --- what to train --------------------------------------------------------------------------------
MODEL=${MODEL:-}                      # e.g. Qwen/Qwen2.5-0.5B or a local path; empty: the tiny demo model
DATA=${DATA:-data/pretrain}           # directories/files, or prepared token stores (space separated)
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

args=(--train_file_dir $DATA --output_dir "$OUTPUT_DIR" --block_size "$BLOCK_SIZE")
[ -n "$MODEL" ] && args+=(--model_name_or_path "$MODEL")
[ -n "$DS_CONFIG" ] && args+=(--deepspeed "$DS_CONFIG")

exec torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC_PER_NODE" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  pretraining.py "${args[@]}" "$@"
