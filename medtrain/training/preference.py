"""Preference trainers: DPO, ORPO and the reward model, on `MedTrainer`, with TRL's losses.

Why MedTrainer subclasses that call TRL's loss code, and not TRL's trainers: TRL's `DPOTrainer`,
`ORPOTrainer` and `RewardTrainer` take only `datasets.Dataset`s, which they re-tokenize with their own
rules in `__init__`; that would throw away what this project is for (the token store and the
streaming path with exact chat-template masks, bad input named by file and line, streaming positions
in checkpoints, complete-or-ignored checkpoints, preemption, the run summary). So the trainers here
are `MedTrainer`s (our dataloaders, checkpoints and data state unchanged) whose loss is TRL's own
code, bound as methods, never rewritten:

    DPOTrainer      trl.DPOTrainer._compute_loss       every --loss_type TRL has (sigmoid, ipo, hinge,
                                                       robust, apo_zero, sppo_hard, sft, ...), f-divergences,
                                                       label smoothing, ld_alpha, WPO weighting; its
                                                       fused LM head (`add_fused_lm_head`) for log-probs
    ORPOTrainer     trl.experimental.orpo.ORPOTrainer.get_batch_loss_metrics (with its concatenated_forward,
                                                       odds_ratio_loss, get_batch_logps)
    RewardTrainer   trl.RewardTrainer.compute_loss     -log sigmoid(r_chosen - r_rejected), centering

These read a handful of trainer attributes that TRL's `__init__` would set; `_bind_*` set them from
our arguments. Because this relies on TRL's method names, TRL is pinned to one minor version
(requirements.txt), and tests/training/test_preference.py checks the log-probabilities, rewards and
DPO loss against an independent computation from the model's logits.

The reference model of DPO: with LoRA there is no second copy (TRL disables the adapter for the
reference forward; an adapter given with --peft_path is copied once to a frozen "ref" adapter, as
TRL does); with full fine-tuning a second copy of the starting model is loaded frozen and prepared
for DeepSpeed (ZeRO-3 partitions it like the policy; `trl.models.prepare_deepspeed`) or DDP
(evaluation mode). ORPO and the reward model need no reference.

Batches come from `preference_collator.PreferenceCollator` (chosen sequences, then rejected ones,
`completion_mask` = the response tokens). Metrics are TRL's: rewards/chosen, rewards/rejected,
rewards/margins, rewards/accuracies (DPO, ORPO), accuracy, margin and the rewards (reward model),
averaged over the logging interval and gathered over ranks.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections import defaultdict

import torch
from transformers import Trainer

from medtrain.training.trainer import MedTrainer

logger = logging.getLogger(__name__)

with warnings.catch_warnings():  # importing trl.experimental warns that its APIs may change: pinned, see above
    warnings.simplefilter("ignore")
    import trl
    from trl.experimental.orpo import ORPOTrainer as _TrlORPO
from trl.trainer.reward_trainer import RewardTrainer as _TrlReward  # noqa: E402
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model  # noqa: E402

_TrlDPO = trl.DPOTrainer

# the per-pair metrics users look at, in the order the summary lists them
PAIR_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "accuracy", "margin")


def _unwrap_peft(model):
    from accelerate.utils import is_peft_model

    return model.get_base_model() if is_peft_model(model) else model


class PreferenceTrainer(MedTrainer):
    """What the three trainers share: TRL's metric bookkeeping and logging, the loss-only evaluation,
    and token counts from the completion mask."""

    loss_is_scaled_for_ga = False  # the losses are means over the micro-batch: the Trainer scales them

    def __init__(self, *args, preference=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.preference = preference
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._total_train_tokens = 0
        self._tp_size = 1
        self.maybe_activation_offload_context = _null()
        if preference is not None and preference.disable_dropout:
            disable_dropout_in_model(self.model)

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.tokens_seen += int(inputs["input_ids"].numel())
        self.target_tokens_seen += int(inputs["completion_mask"].sum())
        return Trainer.training_step(self, model, inputs, num_items_in_batch)

    def log(self, logs: dict, start_time=None) -> None:
        """The metrics TRL's losses recorded since the previous log, averaged, into the logs (eval_
        prefixed during evaluation), as TRL's trainers do."""
        mode = "train" if self.model.training else "eval"
        prefix = "eval_" if mode == "eval" else ""
        logs.update({f"{prefix}{k}": sum(v) / len(v) for k, v in self._metrics[mode].items() if v})
        super().log(logs, start_time)
        self._metrics[mode].clear()

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class DPOTrainer(PreferenceTrainer):
    _compute_loss = _TrlDPO._compute_loss

    def __init__(self, *args, ref_model=None, continued_adapter: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        p = self.preference
        self.beta = p.beta
        self.loss_types = list(p.loss_type)
        self.loss_weights = list(p.loss_weights) if p.loss_weights else [1.0] * len(self.loss_types)
        if len(self.loss_weights) != len(self.loss_types):
            raise ValueError(f"--loss_weights gives {len(self.loss_weights)} weights for {len(self.loss_types)} "
                             "--loss_type values: give one weight per loss type")
        self.ld_alpha = p.ld_alpha
        self.f_divergence_type = p.f_divergence_type
        self.f_alpha_divergence_coef = p.f_alpha_divergence_coef
        self.label_smoothing = p.label_smoothing
        self.use_weighting = p.use_weighting
        self.precompute_ref_logps = False
        self.args.discopop_tau = p.discopop_tau  # read by TRL's discopop loss from the trainer's args
        self.router_aux_loss_coef = 0.0
        self.aux_loss_enabled = False
        outputs = ("log_probs", "entropy", "mean_logits", "is_top1") + (("log_sum_sq_probs",) if p.use_weighting else ())
        add_fused_lm_head(_unwrap_peft(self.model), outputs=outputs)
        self.ref_model = None
        if ref_model is not None:
            from trl.models import prepare_deepspeed

            disable_dropout_in_model(ref_model)
            add_fused_lm_head(ref_model)
            ref_model.eval().requires_grad_(False)
            self.ref_model = (prepare_deepspeed(ref_model, self.accelerator) if self.is_deepspeed_enabled
                              else self.accelerator.prepare_model(ref_model, evaluation_mode=True))
        elif continued_adapter:
            _copy_adapter_as_reference(self.model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return self._compute_loss(model, inputs, return_outputs)


def _copy_adapter_as_reference(model) -> None:
    """An adapter continued from --peft_path: its starting weights become a frozen "ref" adapter (the
    reference policy), as TRL does; a fresh adapter needs none (disabled, it is the base model)."""
    if "ref" in model.peft_config:
        return
    model.add_adapter("ref", model.peft_config["default"])
    for name, param in model.named_parameters():
        if ".default." in name:
            model.get_parameter(name.replace(".default.", ".ref.")).data.copy_(param.data)
    model.set_adapter("default")
    logger.info("DPO reference: the starting weights of the adapter from --peft_path, kept as a frozen 'ref' adapter")


class ORPOTrainer(PreferenceTrainer):
    get_batch_loss_metrics = _TrlORPO.get_batch_loss_metrics
    concatenated_forward = _TrlORPO.concatenated_forward
    odds_ratio_loss = _TrlORPO.odds_ratio_loss
    concatenated_inputs = staticmethod(_TrlORPO.concatenated_inputs)
    get_batch_logps = staticmethod(_TrlORPO.get_batch_logps)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.beta = self.preference.orpo_beta
        self.is_encoder_decoder = False
        self.padding_value = self.processing_class.pad_token_id
        self.aux_loss_enabled = False
        self.aux_loss_coef = 0.0
        self._peft_has_been_casted_to_bf16 = False

    @staticmethod
    def orpo_batch(inputs: dict) -> dict:
        """Our collated batch in the keys TRL's ORPO reads (chosen_* / rejected_*; labels -100 outside
        the response)."""
        ids, att, comp = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
        labels = ids.masked_fill(comp == 0, -100)
        b = ids.shape[0] // 2
        return {"chosen_input_ids": ids[:b], "chosen_attention_mask": att[:b], "chosen_labels": labels[:b],
                "rejected_input_ids": ids[b:], "rejected_attention_mask": att[b:], "rejected_labels": labels[b:]}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        loss, metrics = self.get_batch_loss_metrics(model, self.orpo_batch(inputs), train_eval=mode)
        for k, v in metrics.items():
            self._metrics[mode][k.removeprefix("eval_")].append(v)
        return (loss, metrics) if return_outputs else loss


class RewardTrainer(PreferenceTrainer):
    _trl_compute_loss = _TrlReward.compute_loss

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.args.center_rewards_coefficient = self.preference.center_rewards_coefficient  # read by TRL's loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        model_inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        loss, outputs = self._trl_compute_loss(model, model_inputs, return_outputs=True)
        with torch.no_grad():
            chosen, rejected = torch.chunk(outputs.logits.detach().squeeze(-1), chunks=2)
            self._metrics[mode]["rewards/chosen"].append(self.accelerator.gather(chosen).mean().item())
            self._metrics[mode]["rewards/rejected"].append(self.accelerator.gather(rejected).mean().item())
        return (loss, outputs) if return_outputs else loss


TRAINERS = {"dpo": DPOTrainer, "orpo": ORPOTrainer, "rm": RewardTrainer}


# ---------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------
def load_reference_model(model_args, tokenizer):
    """The frozen starting model for DPO with full fine-tuning (LoRA needs none)."""
    from medtrain.training.modeling import load_model

    logger.info("DPO reference: a frozen copy of %s (full fine-tuning; with --use_peft the adapter disabled is the "
                "reference and no copy is loaded)", model_args.model_name_or_path)
    return load_model(dataclasses.replace(model_args, use_peft=False, peft_path=None), tokenizer)


def load_reward_model(model_args, tokenizer, gradient_checkpointing: bool = False):
    """A sequence classifier with one output (the reward) on the model's backbone, LoRA on top with
    --use_peft (the new score head is trained fully and saved with the adapter)."""
    from transformers import AutoModelForSequenceClassification

    from medtrain.training.modeling import (linear_module_names, quantization_config, resolve_attn_implementation,
                                            resolve_dtype)

    dtype = resolve_dtype(model_args.torch_dtype)
    kwargs = {}
    qconfig = quantization_config(model_args, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path, num_labels=1, dtype=dtype,
        attn_implementation=resolve_attn_implementation(model_args.attn_implementation),
        trust_remote_code=model_args.trust_remote_code, **kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id  # where each sequence ends (its last non-pad token)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if model_args.use_peft:
        from peft import LoraConfig, PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training

        if qconfig is not None:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        if model_args.peft_path:
            return PeftModel.from_pretrained(model, model_args.peft_path, is_trainable=True)
        targets = ([n for n in linear_module_names(model) if n != "score"] if model_args.target_modules.strip() == "all"
                   else [t.strip() for t in model_args.target_modules.split(",") if t.strip()])
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=model_args.lora_rank,
                                                 lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                                                 target_modules=targets))
        if gradient_checkpointing:
            model.enable_input_require_grads()
    return model
