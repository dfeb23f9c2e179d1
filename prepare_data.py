#!/usr/bin/env python
"""Tokenize a corpus once into a token store, alone or across ranks and nodes; or inspect a store.

    python prepare_data.py --tokenizer_name_or_path MODEL --train_file_dir /data/corpus --output_dir /stores/x
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 ... prepare_data.py <same flags>
    python prepare_data.py --stage dpo --tokenizer_name_or_path MODEL --train_file_dir /data/pairs \
        --max_source_length 1024 --max_target_length 512          # the store dpo_training.py will reuse
    python prepare_data.py --inspect /stores/x --inspect_block 3 --block_size 1024

`python prepare_data.py --help` lists every argument (the data arguments are those of pretraining.py).
"""

import sys

from medtrain.cli.prepare import main

if __name__ == "__main__":
    sys.exit(main())
