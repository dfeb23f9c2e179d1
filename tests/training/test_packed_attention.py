"""Document-aware packing really keeps attention inside each document (logits equality)."""

import numpy as np
import pytest
import torch

from medtrain.data.collator import BlockCollator
from medtrain.data.rows import Row


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_document_logits_equal_its_logits_alone(demo_dir, tokenizer, attn):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(demo_dir, attn_implementation=attn).eval()
    a = tokenizer("Hypertension is a common chronic disease.", add_special_tokens=False)["input_ids"] + [2]
    b = tokenizer("糖尿病患者应定期监测血糖，并注意饮食。", add_special_tokens=False)["input_ids"] + [2]
    c = tokenizer("Take the tablet once daily.", add_special_tokens=False)["input_ids"] + [2]
    collate = BlockCollator(tokenizer.pad_token_id, document_aware=True)
    packed = collate([Row(np.array(a + b + c), np.array([len(a), len(b), len(c)])),
                      Row(np.array(c), np.array([len(c)]))])
    alone = collate([Row(np.array(b), np.array([len(b)]))])
    with torch.no_grad():
        out = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits
        ref = model(input_ids=alone["input_ids"], position_ids=alone["position_ids"], use_cache=False).logits
        ref_c = model(input_ids=torch.tensor([c]), use_cache=False).logits
    got = out[0, len(a): len(a) + len(b)]
    assert torch.allclose(got, ref[0], atol=1e-5), (got - ref[0]).abs().max()
    assert torch.allclose(out[0, len(a) + len(b):], ref_c[0], atol=1e-5)
    assert torch.allclose(out[1, : len(c)], ref_c[0], atol=1e-5)  # the padded row too
    # and the label of b's first token is not predicted from a
    assert packed["labels"][0, len(a)].item() == -100

    # without document-aware packing the same tokens do attend across documents
    concat = BlockCollator(tokenizer.pad_token_id, document_aware=False)(
        [Row(np.array(a + b), np.array([len(a), len(b)]))])
    with torch.no_grad():
        crossed = model(**{k: v for k, v in concat.items() if k != "labels"}, use_cache=False).logits
    assert not torch.allclose(crossed[0, len(a):], ref[0], atol=1e-3)
