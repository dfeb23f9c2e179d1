"""The embedded demo: a tiny BPE tokenizer and a tiny Llama, built locally (no hub) on first use.

The tokenizer is a byte-level BPE trained with `tokenizers` on the project's own sample corpus;
the model is a randomly initialised 2-layer Llama. Both are seeded, so they are the same on every
machine, and they are saved once into `demo_dir` and reused.
"""

from __future__ import annotations

import json
import logging
import os

from medtrain.data.sources import RecordReader, find_files, plan_units

logger = logging.getLogger(__name__)

# the demo data ships inside the package (data/pretrain and data/finetune in a checkout point here)
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
DEMO_CORPUS = os.path.join(ASSETS, "pretrain")
DEMO_SFT_DATA = os.path.join(ASSETS, "finetune")
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def _texts(paths):
    for unit in plan_units(find_files(paths)):
        for _, text in RecordReader(unit, skip_bad=True):
            yield text


def build_tokenizer(out_dir: str, corpus=None, vocab_size: int = 4000):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_texts(corpus or [DEMO_CORPUS]), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=2048)
    fast.save_pretrained(out_dir)
    return fast


def build_model(out_dir: str, vocab_size: int, seed: int = 0, **overrides):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=4, max_position_embeddings=2048, vocab_size=vocab_size,
               tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    cfg.update(overrides)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.save_pretrained(out_dir)
    return model


def ensure_demo_assets(demo_dir: str) -> str:
    """Build the tiny tokenizer and model into demo_dir if they are not there yet; return its path."""
    demo_dir = os.path.abspath(demo_dir)
    marker = os.path.join(demo_dir, "medtrain_demo.json")
    if os.path.exists(marker):
        return demo_dir
    tmp = f"{demo_dir}.tmp.{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    logger.info("Building the embedded demo tokenizer and tiny Llama into %s", demo_dir)
    tok = build_tokenizer(tmp)
    build_model(tmp, len(tok))
    with open(os.path.join(tmp, "medtrain_demo.json"), "w") as fh:
        json.dump({"corpus": "data/pretrain", "vocab_size": len(tok)}, fh)
    try:
        os.replace(tmp, demo_dir)
    except OSError:  # another process finished first
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return demo_dir
