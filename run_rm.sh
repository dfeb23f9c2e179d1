#!/usr/bin/env bash
# Reward model launcher (torchrun). Edit the variables below, or set them in the environment.
#
#   bash run_rm.sh                                            # this machine, every GPU (or 2 CPU processes)
#   MODEL=outputs/sft bash run_rm.sh --use_peft true           # LoRA on the SFT model; extra flags go to reward_modeling.py
#   DS_CONFIG=zero3.json bash run_rm.sh                         # ZeRO-3 (full fine-tuning)
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
MODEL=${MODEL:-}                      # the SFT model (a local path or hub name); empty (with empty DATA): the tiny demo
DATA=${DATA:-}                        # directories/files of preference pairs, or prepared token stores; empty: the demo sample
OUTPUT_DIR=${OUTPUT_DIR:-outputs/rm}
MAX_SOURCE_LENGTH=${MAX_SOURCE_LENGTH:-1024}   # longest prompt in tokens (a longer one keeps its end)
MAX_TARGET_LENGTH=${MAX_TARGET_LENGTH:-512}    # longest response in tokens
TEMPLATE=${TEMPLATE:-auto}            # the SFT model's chat template (auto: the tokenizer's own, else vicuna)
DS_CONFIG=${DS_CONFIG:-}              # zero2.json, zero3.json, or empty for plain DDP
RESUME=${RESUME:-auto}                # --resume_from_checkpoint: auto (latest complete one, else fresh), a path, false

args=(--output_dir "$OUTPUT_DIR" --resume_from_checkpoint "$RESUME" --max_source_length "$MAX_SOURCE_LENGTH"
      --max_target_length "$MAX_TARGET_LENGTH" --template_name "$TEMPLATE")
[ -n "$DATA" ] && args+=(--train_file_dir $DATA)
[ -n "$MODEL" ] && args+=(--model_name_or_path "$MODEL")
[ -n "$DS_CONFIG" ] && args+=(--deepspeed "$DS_CONFIG")
exec python -m medtrain.resilience "$HERE/reward_modeling.py" "${args[@]}" "$@"
