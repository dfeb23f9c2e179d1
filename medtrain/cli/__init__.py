"""The runs behind the top-level scripts; each `main(argv) -> exit code` is also a console script:

    pretrain  pretraining.py            medtrain-pretrain
    sft       supervised_finetuning.py  medtrain-sft
    prepare   prepare_data.py           medtrain-prepare
    merge     merge_peft_adapter.py     medtrain-merge
    preference dpo_training.py          medtrain-dpo
               orpo_training.py         medtrain-orpo
               reward_modeling.py       medtrain-rm
"""
