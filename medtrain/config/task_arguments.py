"""The argument classes of SFT and preference training that the data path depends on, apart from the
training scripts so that `prepare_data.py` reads them without importing torch or transformers (its
worker processes fork from it: what it imports, each of them carries).

    SftArguments              supervised_finetuning.py, prepare_data.py --stage sft
    PreferenceDataArguments   what a preference store depends on: prepare_data.py --stage dpo|orpo|rm
    PreferenceArguments       the above and the losses' options: dpo_training.py, orpo_training.py,
                              reward_modeling.py (LOSS_OPTIONS: the options prepare_data.py refuses)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from medtrain.config.arguments import FrozenAfterResolve
from medtrain.data.chat_records import FORMATS
from medtrain.data.chat_templates import TEMPLATES
from medtrain.data.tool_formats import TOOL_FORMATS

# TRL 1.16's DPO loss types (trl.DPOTrainer._compute_loss)
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


@dataclass
class SftArguments(FrozenAfterResolve):
    """How conversations are read, rendered and previewed."""

    template_name: str = field(
        default="auto",
        metadata={"help": "Chat template: auto (the tokenizer's own chat_template when it has one, else vicuna), "
                          "tokenizer (its chat_template, required), or one of "
                          f"{', '.join(sorted(TEMPLATES))} (medtrain/data/chat_templates.py; every MedicalGPT name). "
                          "A registry template is saved with the tokenizer as its chat_template, so "
                          "apply_chat_template matches training; qwen3, qwen3_nothink, qwen3_5, qwen3_5_nothink and "
                          "deepseek3 use the model's own chat_template when it has one."},
    )
    data_format: str = field(
        default="auto",
        metadata={"help": "Input format: auto (detected per file from its first record), sharegpt "
                          "(conversations/from/value), openai (messages/role/content) or alpaca "
                          "(instruction/input/output[/system/history]).",
                  "choices": ["auto", *FORMATS]},
    )
    system_prompt: Optional[str] = field(
        default=None,
        metadata={"help": "System prompt for conversations that have none (default: the template's own; an "
                          "empty string: none)."},
    )
    tool_format: Optional[str] = field(
        default=None,
        metadata={"help": "How tool definitions, calls and results are written: unset = by the tokenizer's chat "
                          "template (tools=, tool_calls, role tool), or the 'default' text format with a registry "
                          f"template; or one of {', '.join(TOOL_FORMATS)} (as text, any template)."},
    )
    train_on_inputs: bool = field(
        default=False,
        metadata={"help": "Train on every token of the conversation (system prompt and user turns too), not only "
                          "the assistant replies (MedicalGPT's flag; default false, as there)."},
    )
    preview_samples: int = field(
        default=0,
        metadata={"help": "Print the first N conversations (input order) with the trained spans marked "
                          "⟦like this⟧ in the decoded text, write them to output_dir/preview.jsonl ({source, "
                          "input_ids, labels, text}), and exit without training."},
    )

    def __post_init__(self):
        problems = []
        if self.preview_samples < 0:
            problems.append(f"--preview_samples must be >= 0, got {self.preview_samples}")
        if self.template_name not in ("auto", "tokenizer", *TEMPLATES):
            problems.append(f"unknown --template_name {self.template_name!r}; choose auto, tokenizer or one of "
                            f"{', '.join(sorted(TEMPLATES))} (or add a ChatTemplate in medtrain/chat_templates.py)")
        if self.tool_format is not None and self.tool_format not in TOOL_FORMATS:
            problems.append(f"unknown --tool_format {self.tool_format!r}; choose one of {', '.join(TOOL_FORMATS)}")
        if problems:
            raise ValueError("Invalid SFT arguments:\n  " + "\n  ".join(problems))


@dataclass
class PreferenceDataArguments(FrozenAfterResolve):
    """How pairs are read, rendered and previewed: what a preference token store depends on (so
    `prepare_data.py --stage dpo|orpo|rm` takes these and no loss option)."""

    template_name: str = field(
        default="auto",
        metadata={"help": "Chat template, as for supervised_finetuning.py: auto (the tokenizer's own chat_template, "
                          f"else vicuna), tokenizer, or one of {', '.join(sorted(TEMPLATES))}. Use the template the "
                          "model was fine-tuned with."},
    )
    system_prompt: Optional[str] = field(
        default=None, metadata={"help": "System prompt for pairs that have none (default: the template's own)."})
    tool_format: Optional[str] = field(
        default=None, metadata={"help": f"How tools are written (as for SFT): unset or one of {', '.join(TOOL_FORMATS)}."})
    max_source_length: int = field(
        default=2048, metadata={"help": "Longest prompt in tokens; a longer one keeps its last tokens (counted)."})
    max_target_length: int = field(
        default=512, metadata={"help": "Longest response in tokens; a longer one keeps its first tokens (counted)."})
    preview_samples: int = field(
        default=0,
        metadata={"help": "Print the first N pairs (input order) as stored: the prompt, then the chosen and the "
                          "rejected response, the tokens the losses count between ⟦ and ⟧; write them to "
                          "output_dir/preview.jsonl (training scripts only), and exit without training or building."},
    )

    def problems(self) -> list[str]:
        problems = []
        if self.template_name not in ("auto", "tokenizer", *TEMPLATES):
            problems.append(f"unknown --template_name {self.template_name!r}; choose auto, tokenizer or one of "
                            f"{', '.join(sorted(TEMPLATES))}")
        if self.tool_format is not None and self.tool_format not in TOOL_FORMATS:
            problems.append(f"unknown --tool_format {self.tool_format!r}; choose one of {', '.join(TOOL_FORMATS)}")
        for name in ("max_source_length", "max_target_length"):
            if getattr(self, name) < 1:
                problems.append(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.preview_samples < 0:
            problems.append(f"--preview_samples must be >= 0, got {self.preview_samples}")
        return problems

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise ValueError("Invalid preference arguments:\n  " + "\n  ".join(problems))


@dataclass
class PreferenceArguments(PreferenceDataArguments):
    """How pairs are read and rendered, and the options of the DPO, ORPO and reward losses (TRL's names)."""

    disable_dropout: bool = field(default=True, metadata={"help": "Turn dropout off in the model (TRL's default)."})
    # DPO (TRL's DPOConfig names)
    beta: float = field(default=0.1, metadata={"help": "DPO: the KL weight beta (higher: closer to the reference)."})
    loss_type: list[str] = field(
        default_factory=lambda: ["sigmoid"],
        metadata={"help": f"DPO: TRL's loss type(s), one or more of {', '.join(LOSS_TYPES)} (summed with "
                          "--loss_weights).", "nargs": "+"})
    loss_weights: Optional[list[float]] = field(
        default=None, metadata={"help": "DPO: one weight per --loss_type (default 1 each).", "nargs": "+"})
    label_smoothing: float = field(
        default=0.0, metadata={"help": "DPO: label smoothing (robust, exo_pair, aot losses)."})
    f_divergence_type: str = field(
        default="reverse_kl", metadata={"help": "DPO: reverse_kl (standard), forward_kl, js_divergence or "
                                                "alpha_divergence."})
    f_alpha_divergence_coef: float = field(default=1.0, metadata={"help": "DPO: alpha of the alpha divergence."})
    ld_alpha: Optional[float] = field(
        default=None, metadata={"help": "DPO: LD-DPO weight of the tokens past the shorter response's length."})
    use_weighting: bool = field(default=False, metadata={"help": "DPO: WPO weighting of pairs."})
    discopop_tau: float = field(default=0.05, metadata={"help": "DPO: tau of the discopop loss."})
    # ORPO
    orpo_beta: float = field(
        default=0.1, metadata={"help": "ORPO: the weight (lambda) of the odds-ratio term next to the NLL of the "
                                       "chosen response (TRL's ORPOConfig.beta; --beta is accepted too)."})
    # reward model
    center_rewards_coefficient: Optional[float] = field(
        default=None, metadata={"help": "Reward model: weight of the penalty that keeps rewards centred on 0."})

    def problems(self) -> list[str]:
        problems = super().problems()
        bad = [t for t in self.loss_type if t not in LOSS_TYPES]
        if bad:
            problems.append(f"unknown --loss_type {', '.join(bad)}; choose from {', '.join(LOSS_TYPES)}")
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            problems.append(f"--loss_weights gives {len(self.loss_weights)} weights for {len(self.loss_type)} "
                            "--loss_type values")
        if self.f_divergence_type not in ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"):
            problems.append(f"unknown --f_divergence_type {self.f_divergence_type!r}")
        if self.beta <= 0 or self.orpo_beta <= 0:
            problems.append("--beta and --orpo_beta must be positive")
        return problems


LOSS_OPTIONS = tuple(f.name for f in dataclasses.fields(PreferenceArguments)
                     if f.name not in {g.name for g in dataclasses.fields(PreferenceDataArguments)})
