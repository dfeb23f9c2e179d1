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

The store can be built ahead by `prepare_data.py --stage dpo|orpo|rm` with the same data flags
(`PreferenceDataArguments`; both build the encoder with `preference_encoder`, so the fingerprints
match and the run reuses it). `--preview_samples N` prints the first N pairs as stored (`preview_pairs`),
writes OUTPUT_DIR/preview.jsonl and exits without training.

With no model given, the embedded demo (the tiny Llama and tokenizer built locally) is trained on
the bundled sample (data/preference) in well under a minute on CPU.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Optional

import numpy as np
from transformers import TrainerCallback, TrainingArguments

from medtrain.cli.pretrain import uses_demo
from medtrain.config.arguments import DataArguments, ModelArguments, Parsed, parse_run_args
from medtrain.config.task_arguments import (LOSS_OPTIONS, LOSS_TYPES, PreferenceArguments,  # noqa: F401
                                             PreferenceDataArguments)
from medtrain.data.preference import COUNTERS, PreferenceEncoder
from medtrain.data.tokenization import spec_from_tokenizer
from medtrain.training.demo import ASSETS
from medtrain.training.runner import run_main, run_training

logger = logging.getLogger(__name__)

DEMO_PREFERENCE_DATA = os.path.join(ASSETS, "preference")
TASKS = {"dpo": "dpo_training.py", "orpo": "orpo_training.py", "rm": "reward_modeling.py"}
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


def preference_encoder(tokenizer, data_args: DataArguments, pref: PreferenceDataArguments) -> PreferenceEncoder:
    """The pair encoder of a run (the runner's `make_encoder`) and of `prepare_data.py --stage dpo|orpo|rm`:
    one definition, so a store prepared ahead has the fingerprint the training run looks for. A registry
    template is also set as the tokenizer's chat_template (the saved tokenizer renders prompts the way
    the model was trained)."""
    spec = spec_from_tokenizer(tokenizer, data_args.add_bos_token, add_eos=False)
    enc = PreferenceEncoder.from_tokenizer(tokenizer, spec, pref.template_name, pref.system_prompt,
                                           pref.max_source_length, pref.max_target_length, pref.tool_format)
    jinja = enc.chat.jinja_template()
    if jinja is not None:
        tokenizer.chat_template = jinja
    return enc


def pair_sample(tokenizer, ids, mask, source: str = "") -> dict:
    """One preview object of a stored pair: {source, prompt, chosen, rejected}, each side in SFT's
    preview format ({input_ids, labels, text}: the prompt + that response, labels -100 on the prompt,
    the response between ⟦ and ⟧ in the text); `prompt` is the decoded prompt."""
    from medtrain.cli.sft import sample_json
    from medtrain.data.preference import split_pair

    prompt, chosen, rejected = split_pair(np.asarray(ids), np.asarray(mask), source or "a pair")
    out = {"source": source, "prompt": tokenizer.decode(prompt.tolist(), skip_special_tokens=False,
                                                        clean_up_tokenization_spaces=False)}
    for name, response in (("chosen", chosen), ("rejected", rejected)):
        out[name] = sample_json(tokenizer, np.concatenate([prompt, response]),
                                np.concatenate([np.zeros(len(prompt)), np.ones(len(response))]), source)
        del out[name]["source"]
    return out


def preview_pairs(model_args, data_args, pref: PreferenceDataArguments, out=None, output_dir: Optional[str] = None,
                  default_data: Optional[str] = None) -> list[dict]:
    """The first `pref.preview_samples` pairs of --train_file_dir in input order, encoded as they are stored
    (template, truncation): printed (the prompt once, then each response with the tokens the losses count
    between ⟦ ⟧) and, with `output_dir`, written to output_dir/preview.jsonl (one `pair_sample` a line)."""
    from medtrain.cli.sft import CLOSE_MARK, OPEN_MARK, collect_samples, save_samples
    from medtrain.runtime.distributed import DistInfo, setup_logging
    from medtrain.training.demo import ensure_demo_assets
    from medtrain.training.modeling import load_tokenizer

    import transformers

    out = out or sys.stdout
    dist = DistInfo.from_env()
    setup_logging(dist)
    transformers.utils.logging.set_verbosity_warning()  # not the model config's dump before the preview
    if not (model_args.tokenizer_name_or_path or model_args.model_name_or_path):
        model_args.model_name_or_path = ensure_demo_assets(model_args.demo_dir)
    tokenizer = load_tokenizer(model_args, cache_dir=data_args.cache_dir)
    encoder = preference_encoder(tokenizer, data_args, pref)
    paths = data_args.train_file_dir or ([default_data] if default_data else None)
    if not paths:
        from medtrain.errors import DataError

        raise DataError("--preview_samples needs --train_file_dir (the pairs to preview)")
    samples, skipped = collect_samples(encoder, paths, data_args, pref.preview_samples,
                                       lambda encoded, where: pair_sample(tokenizer, *encoded, source=where))
    if dist.is_main:
        path = save_samples(samples, output_dir)
        for s in samples:
            n_prompt = len(s["chosen"]["input_ids"]) - sum(1 for x in s["chosen"]["labels"] if x != -100)
            trained = {k: sum(1 for x in s[k]["labels"] if x != -100) for k in ("chosen", "rejected")}
            out.write(f"=== {s['source']}: prompt {n_prompt} tokens, chosen {trained['chosen']}, rejected "
                      f"{trained['rejected']} response tokens (counted by the losses: between {OPEN_MARK} "
                      f"{CLOSE_MARK})\n--- prompt\n{s['prompt']}\n")
            for k in ("chosen", "rejected"):  # each side's text is the prompt, then the marked response
                out.write(f"--- {k}\n{s[k]['text'][len(s['prompt']):]}\n")
        out.flush()
        logger.info("Previewed %d pair(s) (template %s; truncated/dropped: %s; skipped: %s)%s; nothing trained or "
                    "built with --preview_samples", len(samples), encoder.template_name, encoder.counters(),
                    skipped.to_dict() or "nothing", f"; written to {path}" if path else "")
    return samples


def run(task: str, argv: Optional[list[str]] = None) -> dict:
    from medtrain.data.preference_collator import PreferenceCollator
    from medtrain.training.modeling import load_model
    from medtrain.training.preference import TRAINERS, load_reference_model, load_reward_model

    parsed = parse_preference_args(task, argv)
    model_args, data_args, training_args, pref = parsed.objects
    if pref.preview_samples:
        return {"preview": preview_pairs(model_args, data_args, pref, output_dir=training_args.output_dir,
                                         default_data=DEMO_PREFERENCE_DATA)}
    chosen: dict = {}
    log = PreferenceLogCallback(task)

    def make_encoder(tokenizer, config):
        p = config.extra(PreferenceArguments)
        chosen["encoder"] = preference_encoder(tokenizer, config.data, p)
        logger.info("%s: template %s, prompt <= %d tokens, responses <= %d tokens, one pair per row", TASKS[task],
                    chosen["encoder"].template_name, p.max_source_length, p.max_target_length)
        return chosen["encoder"]

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
