#!/usr/bin/env bash
# Supervised fine-tuning launcher (torchrun). Edit the variables below, or set them in the environment.
#
#   bash run_sft.sh                                          # this machine, every GPU (or 2 CPU processes)
#   DS_CONFIG=zero3.json bash run_sft.sh --num_train_epochs 3   # ZeRO-3; extra flags go to supervised_finetuning.py
#   bash run_sft.sh --use_peft true --lora_rank 16           # LoRA (add --load_in_4bit true for QLoRA on GPUs)
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_sft.sh   # on host 1 of 2
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash run_sft.sh   # on host 2 of 2
#
# Runs that survive (as run_pt.sh): torchrun restarts the group after a crash, resuming from the latest
# complete checkpoint; SIGTERM/SIGUSR1 save a checkpoint and end with exit code 143 (rerun to resume).
set -euo pipefail
# Relative paths (DATA, OUTPUT_DIR, DS_CONFIG, flags) are the caller's: this script does not change directory.
HERE="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's medtrain

# --- what to train --------------------------------------------------------------------------------
MODEL=${MODEL:-}                      # e.g. Qwen/Qwen2.5-0.5B-Instruct or a local path; empty (with empty DATA): the tiny demo
DATA=${DATA:-}                        # directories/files of conversations, or prepared token stores (space separated); empty: the demo data
OUTPUT_DIR=${OUTPUT_DIR:-outputs/sft}
MAX_LENGTH=${MAX_LENGTH:-2048}        # longest conversation in tokens (model_max_length); longer ones are cut at turns
TEMPLATE=${TEMPLATE:-auto}            # auto (the tokenizer's chat_template, else vicuna), vicuna, alpaca, chatml, llama3, plain
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
MAX_RESTARTS=${MAX_RESTARTS:-3}       # torchrun restarts the group this often after a crash (never after preemption)
RESUME=${RESUME:-auto}                # --resume_from_checkpoint: auto (latest complete one, else fresh), a path, false
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-300}  # seconds the workers get to finish their step and save after SIGTERM/SIGUSR1
RDZV_BACKEND=${RDZV_BACKEND:-c10d}    # c10d (restarts work; NODE_RANK not used) or static (NODE_RANK fixes the ranks)

args=(--output_dir "$OUTPUT_DIR" --model_max_length "$MAX_LENGTH" --template_name "$TEMPLATE"
      --resume_from_checkpoint "$RESUME")
[ -n "$DATA" ] && args+=(--train_file_dir $DATA)
[ -n "$MODEL" ] && args+=(--model_name_or_path "$MODEL")
if [ -n "$DS_CONFIG" ]; then  # the caller's file, else one shipped next to this script (zero2.json, zero3.json)
  [ ! -e "$DS_CONFIG" ] && [ -e "$HERE/$DS_CONFIG" ] && DS_CONFIG="$HERE/$DS_CONFIG"
  args+=(--deepspeed "$DS_CONFIG")
fi

export NNODES NODE_RANK MASTER_ADDR MASTER_PORT NPROC_PER_NODE MAX_RESTARTS SHUTDOWN_TIMEOUT RDZV_BACKEND
exec python -m medtrain.resilience "$HERE/supervised_finetuning.py" "${args[@]}" "$@"
