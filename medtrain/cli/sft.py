"""Supervised fine-tuning: the run behind `supervised_finetuning.py`.

Conversations (ShareGPT, OpenAI messages or Alpaca; see `conversations`) are rendered with a chat
template (`chat_templates`) and encoded by `ConversationEncoder` into the same token store (or
streaming path) as pretraining text, with a per-token mask: only the assistant replies and their
end-of-turn token are trained (labels -100 elsewhere). The shared runner (`runner.run_training`)
does the rest: model, LoRA, Trainer, evaluation, run summary.

SFT defaults differ from pretraining in two places, resolved here without changing DataArguments:
- one conversation per row (`--packing_strategy none`) unless packing is asked for; `--packing true`
  means document-aware packing (`group_by_text`: several conversations per row, position_ids
  restarting at each, no token attending to another conversation);
- the sequence length is `--model_max_length` (default 2048; 512 in the demo), used as block_size:
  a longer conversation is cut at turn boundaries (counted in the summary).

With no model given, the embedded demo (the tiny Llama and tokenizer built locally) is fine-tuned on
data/finetune.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Callable, Optional

import numpy as np
from transformers import TrainingArguments

from medtrain.config.arguments import DataArguments, ModelArguments, Parsed, parse_run_args
from medtrain.config.run_config import RunConfig, resolve_run
from medtrain.config.task_arguments import SftArguments  # noqa: F401 - the SFT script's options
from medtrain.data.conversations import ConversationEncoder
from medtrain.training.demo import DEMO_SFT_DATA
from medtrain.runtime.distributed import DistInfo
from medtrain.cli.pretrain import uses_demo
from medtrain.training.runner import run_main, run_training
from medtrain.data.tokenization import spec_from_tokenizer

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 2048

# Used when no model is given: the demo fine-tunes the tiny model on data/finetune in well under a
# minute on CPU. User flags come after these, so they override them.
DEMO_FLAGS = ["--model_max_length", "512", "--per_device_train_batch_size", "8", "--learning_rate", "3e-3",
              "--warmup_steps", "10", "--lr_scheduler_type", "cosine", "--num_train_epochs", "3",
              "--group_by_length", "true", "--logging_steps", "10", "--eval_strategy", "steps", "--eval_steps", "40",
              "--save_strategy", "no",
              "--output_dir", "outputs/demo-sft", "--validation_split_percentage", "5", "--num_proc", "1",
              "--seed", "42"]


def resolve_sft_defaults(model_args: ModelArguments, data_args: DataArguments, given: frozenset,
                         change: Callable) -> None:
    """SFT's packing, length and sampling defaults (see the module doc), set through run_config's `change`."""
    if data_args.keep_linebreaks:
        from medtrain.config.arguments import ArgumentError

        raise ArgumentError("--keep_linebreaks applies to pretraining on .txt files (one document per line); SFT "
                            "reads conversations from JSON: drop the flag")
    if data_args.max_train_samples and data_args.max_train_samples_mode is None:
        change(data_args, "max_train_samples_mode", "random", "SFT: --max_train_samples is a random sample of "
               "conversations across all files, seeded (as MedicalGPT's supervised_finetuning.py)")
    if data_args.packing and "packing_strategy" not in given and not data_args.group_by_text:
        if data_args.packing_strategy != "group_by_text":
            change(data_args, "packing_strategy", "group_by_text", "--packing true packs conversations "
                   "document-aware")
    elif not given & {"packing", "packing_strategy", "group_by_text"} and data_args.packing_strategy != "none":
        change(data_args, "packing_strategy", "none", "SFT default: one conversation per row")
    if data_args.packing_strategy == "concat":
        logger.warning("--packing_strategy concat lets attention cross conversations and cuts conversations "
                       "across rows; --packing true packs them document-aware (group_by_text)")
    lengths = [v for name, v in (("model_max_length", model_args.model_max_length),
                                 ("block_size", data_args.block_size)) if name in given and v]
    max_length = min(lengths) if lengths else DEFAULT_MAX_LENGTH
    if model_args.model_max_length != max_length:
        change(model_args, "model_max_length", max_length, "the SFT sequence length")
    if data_args.block_size != max_length:
        change(data_args, "block_size", max_length, "the SFT sequence length (= --model_max_length)")


def parse_sft_args(argv: Optional[list[str]] = None) -> Parsed:
    argv = list(sys.argv[1:] if argv is None else argv)
    if uses_demo(argv):
        argv = DEMO_FLAGS + argv
        if "OMP_NUM_THREADS" not in os.environ:
            # the tiny demo model is fastest on one thread; two threads on a busy 2-core machine thrash
            import torch

            torch.set_num_threads(1)
    return parse_run_args((ModelArguments, DataArguments, TrainingArguments, SftArguments), argv)


def resolve_sft_config(argv: Optional[list[str]] = None) -> RunConfig:
    """The resolved configuration of an SFT run (without building the demo model)."""
    return resolve_run("sft", parse_sft_args(argv), default_data=DEMO_SFT_DATA, resolve_task=resolve_sft_defaults)


def conversation_encoder(tokenizer, data_args: DataArguments, sft_args: SftArguments) -> ConversationEncoder:
    """The SFT encoder for this tokenizer (the runner's `make_encoder`). A registry template is also
    set as the tokenizer's chat_template, so the tokenizer saved with the model renders prompts the
    way the model was trained."""
    spec = spec_from_tokenizer(tokenizer, data_args.add_bos_token, add_eos=False)
    encoder = ConversationEncoder.from_tokenizer(tokenizer, spec, sft_args.template_name, sft_args.data_format,
                                                 sft_args.system_prompt, data_args.block_size, sft_args.tool_format,
                                                 train_on_inputs=sft_args.train_on_inputs)
    jinja = encoder.jinja_template()
    if jinja is not None:
        if getattr(tokenizer, "chat_template", None) and tokenizer.chat_template != jinja:
            logger.warning("Replacing the tokenizer's chat_template with the %s template the model is trained on",
                           encoder.template_name)
        tokenizer.chat_template = jinja
    logger.info("SFT: template %s, data format %s, max length %d, packing %s", encoder.template_name,
                sft_args.data_format, data_args.block_size, data_args.packing_strategy)
    return encoder


# ---------------------------------------------------------------------------------------------------
# preview
# ---------------------------------------------------------------------------------------------------
def trained_spans(ids, mask) -> list:
    """The runs of consecutive trained tokens, as lists of ids."""
    ids, mask = np.asarray(ids), np.asarray(mask).astype(bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [ids[s:e].tolist() for s, e in zip(edges[::2], edges[1::2])]


OPEN_MARK, CLOSE_MARK = "⟦", "⟧"


def marked_text(tokenizer, ids, mask) -> str:
    """The decoded conversation with each run of trained tokens between ⟦ and ⟧."""
    ids, mask = np.asarray(ids), np.asarray(mask).astype(bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))).tolist()
    cuts = [0] + edges + [len(ids)]
    out = []
    for k, (a, b) in enumerate(zip(cuts, cuts[1:])):
        text = tokenizer.decode(ids[a:b].tolist(), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        out.append(f"{OPEN_MARK}{text}{CLOSE_MARK}" if (a < b and mask[a]) else text)
    return "".join(out)


def sample_json(tokenizer, ids, mask, source: str = "") -> dict:
    """One preview object (the documented `preview.jsonl` format; see the README)."""
    ids = np.asarray(ids, dtype=np.int64)
    labels = np.where(np.asarray(mask).astype(bool), ids, -100)
    return {"source": source, "input_ids": ids.tolist(), "labels": labels.tolist(),
            "text": marked_text(tokenizer, ids, mask)}


def collect_samples(encoder, paths, data_args, limit: int, to_sample) -> tuple:
    """The first `limit` records of `paths` that the encoder keeps, each as `to_sample(encoded, where)`
    (where: "file:line"), and the skip counter: what --preview_samples shows (SFT and preference)."""
    from medtrain.data.sources import SkipCounter, find_files, plan_units

    skipped, samples = SkipCounter(), []
    for unit in plan_units(find_files(paths)):
        for key, record in encoder.read(unit, data_args.skip_bad_lines, data_args.max_document_chars, skipped):
            encoded = encoder.encode_batch([record])[0]
            if encoded is not None:
                samples.append(to_sample(encoded, encoder.source(unit, key)))
            if len(samples) >= limit:
                return samples, skipped
    return samples, skipped


def save_samples(samples: list, output_dir: Optional[str]) -> Optional[str]:
    """Writes the previewed samples to OUTPUT_DIR/preview.jsonl (nothing without an output_dir)."""
    if not output_dir:
        return None
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "preview.jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(s, ensure_ascii=False) + "\n")
    return path


def preview(model_args, data_args, sft_args, out=None, output_dir: Optional[str] = None) -> list[dict]:
    """The first `preview_samples` conversations in input order: printed (source, then the marked text)
    and written to `output_dir/preview.jsonl`."""
    from medtrain.training.demo import ensure_demo_assets
    from medtrain.runtime.distributed import setup_logging
    from medtrain.training.modeling import load_tokenizer

    out = out or sys.stdout
    dist = DistInfo.from_env()
    setup_logging(dist)
    if not (model_args.tokenizer_name_or_path or model_args.model_name_or_path):
        model_args.model_name_or_path = ensure_demo_assets(model_args.demo_dir)
    tokenizer = load_tokenizer(model_args)
    encoder = conversation_encoder(tokenizer, data_args, sft_args)
    samples, skipped = collect_samples(encoder, data_args.train_file_dir or [DEMO_SFT_DATA], data_args,
                                       sft_args.preview_samples,
                                       lambda encoded, where: sample_json(tokenizer, *encoded, source=where))
    if dist.is_main:
        path = save_samples(samples, output_dir)
        for s in samples:
            trained = sum(1 for x in s["labels"] if x != -100)
            out.write(f"=== {s['source']}: {len(s['input_ids'])} tokens, {trained} trained (between "
                      f"{OPEN_MARK} {CLOSE_MARK})\n{s['text']}\n")
        out.flush()
        logger.info("Previewed %d conversation(s) (template %s; %s; skipped: %s)%s; no training with "
                    "--preview_samples", len(samples), encoder.template_name, encoder.counters(),
                    skipped.to_dict() or "nothing", f"; written to {path}" if path else "")
    return samples


# ---------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------
SFT_COUNTERS = ("truncated", "truncated_reply_cut", "dropped_no_target", "dropped_trailing_question")


def sft_counters(summary: dict) -> dict:
    """The SFT counters of the run's data (train and eval stores, or the stream), from its summary."""
    out = {}
    for part in ("train", "eval", "streaming"):
        found = {k: int(v) for k, v in (summary.get(part) or {}).items() if k in SFT_COUNTERS}
        if found:
            out[part] = found
    return out


def run(argv: Optional[list[str]] = None) -> dict:
    parsed = parse_sft_args(argv)
    model_args, data_args, _, sft_args = parsed.objects
    if sft_args.preview_samples:
        resolve_sft_defaults(model_args, data_args, parsed.given, lambda obj, name, value, why: setattr(obj, name, value))
        return {"preview": preview(model_args, data_args, sft_args, output_dir=parsed.objects[2].output_dir)}
    chosen = {}

    def make_encoder(tokenizer, config):
        chosen["encoder"] = conversation_encoder(tokenizer, config.data, config.extra(SftArguments))
        return chosen["encoder"]

    def extra(config, summary: dict) -> dict:
        enc, data_args, sft_args = chosen["encoder"], config.data, config.extra(SftArguments)
        sft = {"template": enc.template_name, "data_format": sft_args.data_format,
               "max_length": data_args.block_size, "system_prompt": enc.default_system(),
               "counters": sft_counters(summary),
               "padding_note": "train.padding_fraction is the padding up to block_size (model_max_length); "
                               "batch_padding_fraction is the padding the collator really added (to the longest "
                               "row of each batch)"}
        logger.info("SFT: template %s, max length %d; truncated/dropped: %s", enc.template_name,
                    data_args.block_size, sft["counters"])
        return {"sft": sft}

    return run_training("sft", parsed, make_encoder, default_data=DEMO_SFT_DATA, resolve_task=resolve_sft_defaults,
                        extra_summary=extra)


def main(argv: Optional[list[str]] = None) -> int:
    return run_main(run, argv)


def console() -> None:
    """The console script (`pip install` puts it on PATH)."""
    from medtrain.runtime.distributed import exit_process

    exit_process(main())
