#!/usr/bin/env python
"""Merge a LoRA adapter into its base model and save a plain model + tokenizer (from_pretrained-ready).

    python merge_peft_adapter.py --base_model_name_or_path Qwen/Qwen2.5-0.5B \
        --peft_model_path outputs/sft-lora --output_dir outputs/sft-merged
    python merge_peft_adapter.py --base_model Qwen/Qwen2.5-0.5B --lora_model outputs/sft-lora \
        --tokenizer_path outputs/sft-lora --output_dir outputs/sft-merged   # MedicalGPT's names

`python merge_peft_adapter.py --help` lists the arguments (medtrain/merge.py).
"""

import sys

from medtrain.cli.merge import main

if __name__ == "__main__":
    sys.exit(main())
