#!/usr/bin/env python
"""Continued pretraining of a causal LM on medical and general text.

    python pretraining.py                                   # the embedded demo (tiny model, CPU, ~1 min)
    python pretraining.py --model_name_or_path Qwen/Qwen2.5-0.5B --train_file_dir data/pretrain \
        --block_size 1024 --output_dir outputs/pt          # a real model
    torchrun --nproc_per_node 8 pretraining.py ...          # many GPUs (see run_pt.sh)
    python pretraining.py config.yaml --max_steps 100       # a config file, flags override it

`python pretraining.py --help` lists every argument. The machinery is in the `medtrain` package.
"""

from medtrain.runtime.distributed import exit_process
from medtrain.cli.pretrain import main

if __name__ == "__main__":
    exit_process(main())
