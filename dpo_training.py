#!/usr/bin/env python
"""Direct preference optimization (DPO) of a causal LM on preference pairs: chosen over rejected, against a reference model.

    python dpo_training.py                          # the embedded demo (tiny model, bundled pairs, CPU, < 1 min)
    python dpo_training.py --model_name_or_path outputs/sft --train_file_dir data/preference \
        --template_name qwen --max_source_length 1024 --max_target_length 512 --use_peft true --output_dir outputs/dpo
    torchrun --nproc_per_node 8 dpo_training.py ... # many GPUs (see run_dpo.sh)
    python dpo_training.py config.yaml --max_steps 100

Inputs: MedicalGPT's pairs (conversations + chosen/rejected, or system/history/question/response_chosen/
response_rejected) or TRL's prompt/chosen/rejected messages, in .jsonl/.json/.parquet. `--help` lists
every argument. The machinery is in the `medtrain` package (medtrain/cli/preference.py).
"""

from medtrain.cli.preference import main_dpo
from medtrain.runtime.distributed import exit_process

if __name__ == "__main__":
    exit_process(main_dpo())
