"""Preference training: the runs behind `dpo_training.py`, `orpo_training.py` and `reward_modeling.py`.

Pairs (MedicalGPT's and TRL's formats; see `data.preference`) are rendered with the SFT chat-template
machinery and prepared once into the token store (or streamed), one pair per document, one pair per
row; the shared runner (`runner.run_training`) does the rest with the task's model, collator and
trainer (`training.preference`: TRL's DPO, ORPO and reward losses on MedTrainer).

Flags: MedicalGPT's names (--max_source_length, --max_target_length, --template_name, --tool_format,
--use_peft, --orpo_beta, ...) plus TRL's own options (--beta, --loss_type, --loss_weights,
--label_smoothing, --f_divergence_type, --ld_alpha, --center_rewards_coefficient, ...); an option of
another task is an error, not ignored. The sequence layout is settled here: --packing_strategy none
and --block_size = max_source_length + 2 x max_target_length (one stored pair), so --block_size,
--model_max_length and packing flags are errors.

With no model given, the embedded demo (the tiny Llama and tokenizer built locally) is trained on
the bundled sample (data/preference) in well under a minute on CPU.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

from transformers import TrainerCallback, TrainingArguments

from medtrain.cli.pretrain import uses_demo
from medtrain.config.arguments import DataArguments, FrozenAfterResolve, ModelArguments, Parsed, parse_run_args
from medtrain.data.chat_templates import TEMPLATES
from medtrain.data.preference import COUNTERS, PreferenceEncoder
from medtrain.data.tokenization import spec_from_tokenizer
from medtrain.data.tool_formats import TOOL_FORMATS
from medtrain.training.demo import ASSETS
from medtrain.training.runner import run_main, run_training

logger = logging.getLogger(__name__)

DEMO_PREFERENCE_DATA = os.path.join(ASSETS, "preference")
TASKS = {"dpo": "dpo_training.py", "orpo": "orpo_training.py", "rm": "reward_modeling.py"}
# TRL 1.16's DPO loss types (trl.DPOTrainer._compute_loss)
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")
# the options that belong to one task only (given to another, they are an error)
TASK_OPTIONS = {
    "dpo": ("beta", "loss_type", "loss_weights", "label_smoothing", "f_divergence_type", "f_alpha_divergence_coef",
            "ld_alpha", "use_weighting", "discopop_tau"),
    "orpo": ("orpo_beta",),
    "rm": ("center_rewards_coefficient",),
}
ORPO_ALSO = ("beta",)  # TRL's ORPOConfig calls ORPO's weight `beta`: accepted as --orpo_beta's other name

_DEMO_COMMON = ["--max_source_length", "192", "--max_target_length", "96", "--per_device_train_batch_size", "8",
                "--warmup_steps", "5", "--logging_steps", "5", "--eval_strategy", "steps", "--eval_steps", "20",
                "--save_strategy", "no", "--validation_split_percentage", "5", "--num_proc", "1", "--seed", "42"]
DEMO_FLAGS = {
    "dpo": _DEMO_COMMON + ["--learning_rate", "1e-3", "--max_steps", "40", "--beta", "0.1", "--output_dir",
                           "outputs/demo-dpo"],
    "orpo": _DEMO_COMMON + ["--learning_rate", "2e-3", "--max_steps", "40", "--output_dir", "outputs/demo-orpo"],
    "rm": _DEMO_COMMON + ["--learning_rate", "1e-3", "--max_steps", "40", "--output_dir", "outputs/demo-rm"],
}


@dataclass
class PreferenceArguments(FrozenAfterResolve):
    """How pairs are read and rendered, and the options of the DPO, ORPO and reward losses (TRL's names)."""

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

    def __post_init__(self):
        problems = []
        if self.template_name not in ("auto", "tokenizer", *TEMPLATES):
            problems.append(f"unknown --template_name {self.template_name!r}; choose auto, tokenizer or one of "
                            f"{', '.join(sorted(TEMPLATES))}")
        if self.tool_format is not None and self.tool_format not in TOOL_FORMATS:
            problems.append(f"unknown --tool_format {self.tool_format!r}; choose one of {', '.join(TOOL_FORMATS)}")
        for name in ("max_source_length", "max_target_length"):
            if getattr(self, name) < 1:
                problems.append(f"--{name} must be at least 1, got {getattr(self, name)}")
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
        if problems:
            raise ValueError("Invalid preference arguments:\n  " + "\n  ".join(problems))


def parse_preference_args(task: str, argv: Optional[list[str]] = None) -> Parsed:
    argv = list(sys.argv[1:] if argv is None else argv)
    if uses_demo(argv):
        argv = DEMO_FLAGS[task] + argv
        if "OMP_NUM_THREADS" not in os.environ:
            import torch

            torch.set_num_threads(1)  # the tiny demo model is fastest on one thread
    return parse_run_args((ModelArguments, DataArguments, TrainingArguments, PreferenceArguments), argv)


def task_resolver(task: str, pref: PreferenceArguments):
    """run_config's `resolve_task` for a preference task: options of other tasks are errors; one pair
    per row, the block size of one stored pair (see the module doc)."""

    def resolve(model_args, data_args, given, change):
        foreign = [n for t, names in TASK_OPTIONS.items() if t != task for n in names
                   if n in given and not (task == "orpo" and n in ORPO_ALSO)]
        if foreign:
            owner = {n: t for t, names in TASK_OPTIONS.items() for n in names}
            raise ValueError(f"{TASKS[task]} does not use " + ", ".join(f"--{n} (an option of {TASKS[owner[n]]})"
                                                                       for n in foreign))
        if task == "orpo" and {"beta", "orpo_beta"} <= given and pref.beta != pref.orpo_beta:
            raise ValueError(f"--beta {pref.beta} and --orpo_beta {pref.orpo_beta} both set ORPO's weight: give one")
        layout = [n for n in ("block_size", "model_max_length", "packing", "group_by_text") if n in given]
        if "packing_strategy" in given and data_args.packing_strategy != "none":
            layout.append("packing_strategy")
        if layout:
            raise ValueError(", ".join(f"--{n}" for n in layout) + ": preference training keeps one pair per row; "
                             "set the lengths with --max_source_length and --max_target_length")
        if data_args.packing_strategy != "none":
            change(data_args, "packing_strategy", "none", "preference training: one pair per row")
        block = pref.max_source_length + 2 * pref.max_target_length
        if data_args.block_size != block:
            change(data_args, "block_size", block, "one stored pair: max_source_length + 2 x max_target_length")

    return resolve


def orpo_weight(pref: PreferenceArguments, given) -> float:
    return pref.beta if ("beta" in given and "orpo_beta" not in given) else pref.orpo_beta


class PreferenceLogCallback(TrainerCallback):
    """Logs the pair metrics, keeps the first and last logged values for the summary, and draws the
    curves (output_dir/preference_metrics.png) when training ends."""

    PANELS = {"dpo": [("loss",), ("rewards/chosen", "rewards/rejected"), ("rewards/margins",), ("rewards/accuracies",)],
              "orpo": [("loss",), ("rewards/chosen", "rewards/rejected"), ("rewards/margins",), ("rewards/accuracies",),
                       ("nll_loss",)],
              "rm": [("loss",), ("rewards/chosen", "rewards/rejected"), ("margin",), ("accuracy",)]}

    def __init__(self, task: str):
        from medtrain.training.preference import PAIR_METRICS

        self.task, self.keys = task, ("loss",) + PAIR_METRICS
        self.first: dict = {}
        self.last: dict = {}
        self.plot: Optional[str] = None

    def on_log(self, args, state, control, logs=None, **kw):
        found = {k: round(float(logs[k]), 4) for k in self.keys if logs and k in logs}
        if not found:
            return
        if not self.first:
            self.first = found
        self.last = found
        if state.is_world_process_zero:
            logger.info("step %d: %s", state.global_step, ", ".join(f"{k} {v}" for k, v in found.items()))

    def on_train_end(self, args, state, control, **kw):
        if state.is_world_process_zero:
            from medtrain.training.metric_plot import plot_metrics

            self.plot = plot_metrics(state.log_history, self.PANELS[self.task],
                                     os.path.join(args.output_dir, "preference_metrics.png"), title=TASKS[self.task])


def counters(summary: dict) -> dict:
    """The preference counters of the run's data: summed over the manifests of the train and eval
    stores (the encoder's counts, recorded when each store was built), or the stream's totals."""
    import json

    out = {}
    for part in ("train", "eval"):
        stores = (summary.get(part) or {}).get("stores") or []
        if stores:
            totals = dict.fromkeys(COUNTERS, 0)
            for store in stores:
                with open(os.path.join(store, "manifest.json")) as fh:
                    manifest = json.load(fh)
                for k in COUNTERS:
                    totals[k] += int(manifest.get(k, 0))
            out[part] = totals
    streaming = summary.get("streaming") or {}
    if streaming:  # only where the streaming readers report the encoder's counts
        found = {k: int(streaming[k]) for k in COUNTERS if k in streaming}
        out["streaming"] = found or "not reported by the streaming readers"
    return out


def run(task: str, argv: Optional[list[str]] = None) -> dict:
    from medtrain.data.preference_collator import PreferenceCollator
    from medtrain.training.modeling import load_model
    from medtrain.training.preference import TRAINERS, load_reference_model, load_reward_model

    parsed = parse_preference_args(task, argv)
    chosen: dict = {}
    log = PreferenceLogCallback(task)

    def make_encoder(tokenizer, config):
        p = config.extra(PreferenceArguments)
        spec = spec_from_tokenizer(tokenizer, config.data.add_bos_token, add_eos=False)
        enc = PreferenceEncoder.from_tokenizer(tokenizer, spec, p.template_name, p.system_prompt, p.max_source_length,
                                               p.max_target_length, p.tool_format)
        jinja = enc.chat.jinja_template()
        if jinja is not None:  # the saved tokenizer renders prompts the way the model was trained
            tokenizer.chat_template = jinja
        logger.info("%s: template %s, prompt <= %d tokens, responses <= %d tokens, one pair per row", TASKS[task],
                    enc.template_name, p.max_source_length, p.max_target_length)
        chosen["encoder"] = enc
        return enc

    def make_model(config, tokenizer):
        gc = config.training.gradient_checkpointing
        if task == "rm":
            return load_reward_model(config.model, tokenizer, gradient_checkpointing=gc)
        return load_model(config.model, tokenizer, gradient_checkpointing=gc)

    def make_trainer(config, tokenizer, **kwargs):
        p = config.extra(PreferenceArguments)
        extra = {}
        if task == "dpo":
            if not config.model.use_peft:
                extra["ref_model"] = load_reference_model(config.model, tokenizer)
            extra["continued_adapter"] = bool(config.model.use_peft and config.model.peft_path)
        if task == "orpo":
            import dataclasses

            p = dataclasses.replace(p, orpo_beta=orpo_weight(p, config.given))
        return TRAINERS[task](preference=p, **kwargs, **extra)

    def extra_summary(config, summary: dict) -> dict:
        p, enc = config.extra(PreferenceArguments), chosen["encoder"]
        options = {n: getattr(p, n) for n in TASK_OPTIONS[task]}
        if task == "orpo":
            options["orpo_beta"] = orpo_weight(p, config.given)
        if task == "dpo":
            options["reference"] = ("the model with the LoRA adapter disabled" if config.model.use_peft
                                    else "a frozen copy of the starting model")
        out = {"task": task, "template": enc.template_name, "max_source_length": p.max_source_length,
               "max_target_length": p.max_target_length, "options": options, "counters": counters(summary),
               "first_logged": log.first, "last_logged": log.last, "plot": log.plot}
        logger.info("%s: metrics first %s, last %s; truncated/dropped: %s", TASKS[task], log.first, log.last,
                    out["counters"])
        return {"preference": out}

    return run_training(task, parsed, make_encoder, default_data=DEMO_PREFERENCE_DATA,
                        resolve_task=task_resolver(task, parsed.objects[3]), callbacks=[log],
                        extra_summary=extra_summary, make_model=make_model,
                        make_collator=lambda tokenizer, data: PreferenceCollator(tokenizer.pad_token_id),
                        make_trainer=make_trainer, perplexity=False)


def main_dpo(argv: Optional[list[str]] = None) -> int:
    return run_main(lambda a: run("dpo", a), argv)


def main_orpo(argv: Optional[list[str]] = None) -> int:
    return run_main(lambda a: run("orpo", a), argv)


def main_rm(argv: Optional[list[str]] = None) -> int:
    return run_main(lambda a: run("rm", a), argv)


def _console(main) -> None:
    from medtrain.runtime.distributed import exit_process

    exit_process(main())


def console_dpo() -> None:
    _console(main_dpo)


def console_orpo() -> None:
    _console(main_orpo)


def console_rm() -> None:
    _console(main_rm)
