#!/usr/bin/env python
"""Reward model training on preference pairs: a scalar head scores the chosen response above the rejected one.

    python reward_modeling.py                          # the embedded demo (tiny model, bundled pairs, CPU, < 1 min)
    python reward_modeling.py --model_name_or_path outputs/sft --train_file_dir data/preference \
        --template_name qwen --max_source_length 1024 --max_target_length 512 --use_peft true --output_dir outputs/rm
    torchrun --nproc_per_node 8 reward_modeling.py ... # many GPUs (see run_rm.sh)
    python reward_modeling.py config.yaml --max_steps 100

Inputs: MedicalGPT's pairs (conversations + chosen/rejected, or system/history/question/response_chosen/
response_rejected) or TRL's prompt/chosen/rejected messages, in .jsonl/.json/.parquet. `--help` lists
every argument. The machinery is in the `medtrain` package (medtrain/cli/preference.py).
"""

from medtrain.cli.preference import main_rm
from medtrain.runtime.distributed import exit_process

if __name__ == "__main__":
    exit_process(main_rm())
