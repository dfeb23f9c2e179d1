#!/usr/bin/env python
"""Supervised fine-tuning (SFT) of a causal LM on conversations: only the assistant replies are trained.

    python supervised_finetuning.py                         # the embedded demo (tiny model, CPU, < 1 min)
    python supervised_finetuning.py --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --train_file_dir data/finetune --model_max_length 2048 --output_dir outputs/sft
    python supervised_finetuning.py ... --preview_samples 3 # print 3 processed samples and exit
    torchrun --nproc_per_node 8 supervised_finetuning.py ... # many GPUs (see run_sft.sh)
    python supervised_finetuning.py config.yaml --max_steps 100

Inputs: ShareGPT, OpenAI messages or Alpaca records in .jsonl/.json/.parquet. `--help` lists every
argument. The machinery is in the `medtrain` package (medtrain/sft.py).
"""

from medtrain.runtime.distributed import exit_process
from medtrain.cli.sft import main

if __name__ == "__main__":
    exit_process(main())
