"""The preference trainers compute what they should, checked against an independent computation from
the model's plain logits: only response tokens count in the log-probabilities, the DPO loss and
rewards follow from them and the reference's, the LoRA reference is the model with its adapter
disabled (no second copy), and ORPO's odds ratio reads the average response log-probability."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, TrainingArguments

from medtrain.data.preference import PreferenceEncoder, split_pair
from medtrain.data.preference_collator import PreferenceCollator
from medtrain.data.rows import Row
from medtrain.data.tokenization import spec_from_tokenizer
from medtrain.cli.preference import PreferenceArguments
from medtrain.data.preference import parse_pair
from medtrain.training.preference import DPOTrainer, ORPOTrainer

PAIRS = [
    {"conversations": [{"from": "human", "value": "Is a fever of 39 degrees dangerous?"}],
     "chosen": "It needs care: drink fluids and see a doctor if it lasts over three days.", "rejected": "No."},
    {"question": "高血压要注意什么？", "response_chosen": "少盐、规律运动、按时服药。", "response_rejected": "不用管。"},
]


@pytest.fixture(scope="module")
def batch(tokenizer):
    enc = PreferenceEncoder.from_tokenizer(tokenizer, spec_from_tokenizer(tokenizer, None, add_eos=False), "vicuna")
    rows = []
    for rec in PAIRS:
        ids, mask = enc.encode_batch([enc.render(parse_pair(rec))])[0]
        rows.append(Row(ids.astype(np.int64), np.array([len(ids)]), None, mask=mask))
    return rows, PreferenceCollator(tokenizer.pad_token_id)(rows)


def response_logps(model, rows, side: int) -> torch.Tensor:
    """Sum of log p(token) over one side's response tokens, each sequence run alone (no padding)."""
    out = []
    for r in rows:
        prompt, chosen, rejected = split_pair(r.input_ids, r.mask)
        resp = chosen if side == 1 else rejected
        ids = torch.tensor(np.concatenate([prompt, resp]))[None]
        with torch.no_grad():
            logp = F.log_softmax(model(ids).logits[0].float(), -1)
        total = sum(logp[t - 1, ids[0, t]] for t in range(len(prompt), ids.shape[1]))
        out.append(total)
    return torch.stack(out)


def make_trainer(cls, model, tokenizer, tmp_path, **kw):
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=2)
    pref = PreferenceArguments(beta=0.5)
    return cls(model=model, args=args, train_dataset=[0], data_collator=lambda x: x, processing_class=tokenizer,
               preference=pref, **kw)


def perturbed(demo_dir, seed):
    model = AutoModelForCausalLM.from_pretrained(demo_dir)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def test_dpo_logps_loss_and_rewards_count_only_response_tokens(demo_dir, tokenizer, batch, tmp_path):
    rows, inputs = batch
    policy, ref = perturbed(demo_dir, 1), AutoModelForCausalLM.from_pretrained(demo_dir).eval()
    pc, pr = response_logps(policy, rows, 1), response_logps(policy, rows, 2)
    rc, rr = response_logps(ref, rows, 1), response_logps(ref, rows, 2)
    trainer = make_trainer(DPOTrainer, policy, tokenizer, tmp_path, ref_model=ref)
    trainer.model.eval()
    loss = trainer.compute_loss(trainer.model, {k: v for k, v in inputs.items() if k != "_meta"})
    m = trainer._metrics["eval"]
    assert m["logps/chosen"][0] == pytest.approx(pc.mean().item(), rel=1e-4)
    assert m["logps/rejected"][0] == pytest.approx(pr.mean().item(), rel=1e-4)
    assert m["rewards/chosen"][0] == pytest.approx(0.5 * (pc - rc).mean().item(), abs=1e-4)
    assert m["rewards/margins"][0] == pytest.approx(0.5 * ((pc - rc) - (pr - rr)).mean().item(), abs=1e-4)
    expected = -F.logsigmoid(0.5 * ((pc - rc) - (pr - rr))).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_dpo_with_lora_uses_the_disabled_adapter_as_reference(demo_dir, tokenizer, batch, tmp_path):
    from peft import LoraConfig, get_peft_model

    rows, inputs = batch
    base = AutoModelForCausalLM.from_pretrained(demo_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    model.eval()
    pc = response_logps(model, rows, 1)
    with model.disable_adapter():
        rc = response_logps(model, rows, 1)
    assert not torch.allclose(pc, rc)
    trainer = make_trainer(DPOTrainer, model, tokenizer, tmp_path)
    assert trainer.ref_model is None  # no second copy of the model
    trainer.model.eval()
    trainer.compute_loss(trainer.model, {k: v for k, v in inputs.items() if k != "_meta"})
    assert trainer._metrics["eval"]["rewards/chosen"][0] == pytest.approx(0.5 * (pc - rc).mean().item(), abs=1e-4)


def test_orpo_odds_ratio_uses_average_response_logps(demo_dir, tokenizer, batch, tmp_path):
    rows, inputs = batch
    model = perturbed(demo_dir, 2)
    trainer = make_trainer(ORPOTrainer, model, tokenizer, tmp_path)
    trainer.model.eval()
    trainer.compute_loss(trainer.model, {k: v for k, v in inputs.items() if k != "_meta"})
    lengths = torch.tensor([len(split_pair(r.input_ids, r.mask)[1]) for r in rows], dtype=torch.float)
    avg = response_logps(model, rows, 1) / lengths
    # ORPO's rewards are beta x the average log-probability of the response tokens (orpo_beta 0.1)
    assert trainer._metrics["eval"]["rewards/chosen"][0] == pytest.approx(0.1 * avg.mean().item(), rel=1e-4)
