#!/usr/bin/env bash
# Supervised fine-tuning launcher (torchrun). Edit the variables below, or set them in the environment.
#
#   bash run_sft.sh                                          # this machine, every GPU (or 2 CPU processes)
#   DS_CONFIG=zero3.json bash run_sft.sh --num_train_epochs 3   # ZeRO-3; extra flags go to supervised_finetuning.py
#   bash run_sft.sh --use_peft true --lora_rank 16           # LoRA (add --qlora true for QLoRA on GPUs)
#
# Where to run (read by the launcher, python -m medtrain.resilience; defaults in brackets): NNODES [1],
# NODE_RANK [0], MASTER_ADDR [127.0.0.1], MASTER_PORT [29500], NPROC_PER_NODE [one per GPU, else 2],
# RDZV_BACKEND [c10d]. Runs that survive: torchrun restarts the group after a crash (MAX_RESTARTS [3]),
# resuming from the latest complete checkpoint; SIGTERM/SIGUSR1 make every rank save a checkpoint within
# SHUTDOWN_TIMEOUT [300] seconds and the script exit with 143 (rerun the same command to resume); bad
# input exits with 2 and is not restarted. Relative paths (DATA, OUTPUT_DIR, DS_CONFIG, flags) are the
# caller's; DS_CONFIG=zero2.json or zero3.json also finds the copy next to this script.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's medtrain

# --- what to train --------------------------------------------------------------------------------
MODEL=${MODEL:-}                      # e.g. Qwen/Qwen2.5-0.5B-Instruct or a local path; empty (with empty DATA): the tiny demo
DATA=${DATA:-}                        # directories/files of conversations, or prepared token stores; empty: the demo data
OUTPUT_DIR=${OUTPUT_DIR:-outputs/sft}
MAX_LENGTH=${MAX_LENGTH:-2048}        # longest conversation in tokens (model_max_length); longer ones are cut at turns
TEMPLATE=${TEMPLATE:-auto}            # auto (the tokenizer's chat_template, else vicuna), or a --template_name
DS_CONFIG=${DS_CONFIG:-}              # zero2.json, zero3.json, or empty for plain DDP
RESUME=${RESUME:-auto}                # --resume_from_checkpoint: auto (latest complete one, else fresh), a path, false

args=(--output_dir "$OUTPUT_DIR" --resume_from_checkpoint "$RESUME" --model_max_length "$MAX_LENGTH"
      --template_name "$TEMPLATE")
[ -n "$DATA" ] && args+=(--train_file_dir $DATA)
[ -n "$MODEL" ] && args+=(--model_name_or_path "$MODEL")
[ -n "$DS_CONFIG" ] && args+=(--deepspeed "$DS_CONFIG")
exec python -m medtrain.resilience "$HERE/supervised_finetuning.py" "${args[@]}" "$@"
