#!/usr/bin/env python
"""ORPO (odds-ratio preference optimization) of a causal LM on preference pairs: SFT on the chosen response plus an odds-ratio term, no reference model.

    python orpo_training.py                          # the embedded demo (tiny model, bundled pairs, CPU, < 1 min)
    python orpo_training.py --model_name_or_path outputs/sft --train_file_dir data/preference \
        --template_name qwen --max_source_length 1024 --max_target_length 512 --use_peft true --output_dir outputs/orpo
    torchrun --nproc_per_node 8 orpo_training.py ... # many GPUs (see run_orpo.sh)
    python orpo_training.py config.yaml --max_steps 100

Inputs: MedicalGPT's pairs (conversations + chosen/rejected, or system/history/question/response_chosen/
response_rejected) or TRL's prompt/chosen/rejected messages, in .jsonl/.json/.parquet. `--help` lists
every argument. The machinery is in the `medtrain` package (medtrain/cli/preference.py).
"""

from medtrain.cli.preference import main_orpo
from medtrain.runtime.distributed import exit_process

if __name__ == "__main__":
    exit_process(main_orpo())
