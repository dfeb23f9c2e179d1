#!/usr/bin/env bash
# Reward model launcher (torchrun). Edit the variables below, or set them in the environment.
#
#   bash run_rm.sh                                           # this machine, every GPU (or 2 CPU processes)
#   MODEL=outputs/sft bash run_rm.sh --use_peft true          # LoRA on the SFT model; extra flags go to reward_modeling.py
#   DS_CONFIG=zero3.json bash run_rm.sh                        # ZeRO-3 (full fine-tuning)
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_rm.sh   # on host 1 of 2 (NODE_RANK=1 on host 2)
#
# Runs that survive (as run_pt.sh): torchrun restarts the group after a crash, resuming from the latest
# complete checkpoint; SIGTERM/SIGUSR1 save a checkpoint and end with exit code 143 (rerun to resume).
set -euo pipefail
cd "$(dirname "$0")"

# --- what to train --------------------------------------------------------------------------------
MODEL=${MODEL:-}                      # the SFT model (a local path or hub name); empty: the tiny demo model
DATA=${DATA:-data/preference}         # directories/files of preference pairs, or prepared token stores (space separated)
OUTPUT_DIR=${OUTPUT_DIR:-outputs/rm}
MAX_SOURCE_LENGTH=${MAX_SOURCE_LENGTH:-1024}   # longest prompt in tokens (a longer one keeps its end)
MAX_TARGET_LENGTH=${MAX_TARGET_LENGTH:-512}    # longest response in tokens
TEMPLATE=${TEMPLATE:-auto}            # the chat template the model was fine-tuned with (auto: the tokenizer's own, else vicuna)
DS_CONFIG=${DS_CONFIG:-}              # zero2.json, zero3.json, or empty for plain DDP

# --- where to run ---------------------------------------------------------------------------------
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
if [ -z "${NPROC_PER_NODE:-}" ]; then  # one process per visible GPU, else 2 CPU processes
  NPROC_PER_NODE=$(python -c "import torch; print(torch.cuda.device_count() or 2)")
fi

# --- surviving failures (see run_pt.sh) -----------------------------------------------------------
MAX_RESTARTS=${MAX_RESTARTS:-3}
RESUME=${RESUME:-auto}                # --resume_from_checkpoint: auto (latest complete one, else fresh), a path, false
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-300}
RDZV_BACKEND=${RDZV_BACKEND:-c10d}

args=(--train_file_dir $DATA --output_dir "$OUTPUT_DIR" --max_source_length "$MAX_SOURCE_LENGTH"
      --max_target_length "$MAX_TARGET_LENGTH" --template_name "$TEMPLATE" --resume_from_checkpoint "$RESUME")
[ -n "$MODEL" ] && args+=(--model_name_or_path "$MODEL")
[ -n "$DS_CONFIG" ] && args+=(--deepspeed "$DS_CONFIG")

export NNODES NODE_RANK MASTER_ADDR MASTER_PORT NPROC_PER_NODE MAX_RESTARTS SHUTDOWN_TIMEOUT RDZV_BACKEND
exec python -m medtrain.resilience reward_modeling.py "${args[@]}" "$@"
