"""The run configuration: arguments resolved once, frozen, logged at start and saved with the run.

Parsing gives the flags as typed (`arguments.parse_args`); `resolve_run` then settles, in this one
place, everything a run decides before it starts: the demo model and data when none are given,
task defaults (SFT's packing and length), `--block_size` capped by `--model_max_length`, the
checkpoint `--resume_from_checkpoint` means, and the Trainer settings our datasets imply (sampling
order, no batch replay when a stream resumes from its saved position). Nothing changes the
arguments afterwards: our argument dataclasses are frozen (assigning to one raises).

`RunConfig.save()` writes `<output_dir>/run_config.json`:

    {"medtrain_run_config": 1, "task": "pretraining", "medtrain_version": "0.3.0",
     "arguments": {"model_name_or_path": "...", "block_size": 64, "max_steps": 30, ...},
     "resolved": {"model": {...every field...}, "data": {...}, "training": {...}},
     "resume_from": null, "notes": ["--block_size 4096 is over --model_max_length 2048: using 2048"]}

`arguments` holds the flags the run was given, with their resolved values: `python pretraining.py
OUTPUT_DIR/run_config.json` (or `supervised_finetuning.py`) reruns the same run, and flags after
the file override it (`... run_config.json --output_dir other`). `resolved` shows every setting.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import logging
import os
import socket
from dataclasses import dataclass
from typing import Callable, Optional

from medtrain import __version__
from medtrain.config.arguments import ArgumentError, DataArguments, ModelArguments, Parsed
from medtrain.resilience.checkpoints import AUTO, finished_run, resolve_resume

logger = logging.getLogger(__name__)

RUN_CONFIG = "run_config.json"
RUN_CONFIG_FORMAT = 1


def resume_arg(value):
    """--resume_from_checkpoint: a path; true/latest for the newest complete checkpoint in output_dir;
    auto: that, or a fresh start when there is none (resolved by checkpoints.resolve_resume)."""
    if value is None:
        return None
    if str(value).lower() == AUTO:
        return AUTO
    if str(value).lower() in ("true", "latest", "last"):
        return True
    if str(value).lower() in ("false", "none", ""):
        return None
    return value


@dataclass(frozen=True)
class RunConfig:
    """Everything a run uses, resolved. `extras` holds task-specific argument objects (e.g. SFT's)."""

    task: str
    model: ModelArguments
    data: DataArguments
    training: object                    # transformers.TrainingArguments
    extras: tuple = ()
    given: frozenset = frozenset()      # names of the arguments the run was given (flags or config file)
    resume_from: Optional[str] = None   # the checkpoint to resume from (None: a fresh start)
    notes: tuple = ()                   # what resolution changed, and why
    complete: Optional[str] = None      # why the run in output_dir is already finished (auto/true only)
    typed: frozenset = frozenset()      # the arguments the user gave (before resolution added any)

    def extra(self, cls):
        """The task-specific argument object of type `cls`."""
        for e in self.extras:
            if isinstance(e, cls):
                return e
        raise KeyError(cls.__name__)

    def _objects(self) -> list:
        return [self.model, self.data, *self.extras, self.training]

    def arguments(self) -> dict:
        """The given arguments with their resolved values: a config file that reruns this run."""
        out = {}
        for obj in self._objects():
            for f in dataclasses.fields(obj):
                if f.name in self.given and f.init:
                    value = _plain(getattr(obj, f.name), f.name)
                    if value is not None and value != []:
                        out[f.name] = value
        return out

    def resolved(self) -> dict:
        parts = {"model": self.model, "data": self.data, "training": self.training}
        parts.update({type(e).__name__: e for e in self.extras})
        return {name: {f.name: _plain(getattr(obj, f.name), f.name) for f in dataclasses.fields(obj)}
                for name, obj in parts.items()}

    def to_dict(self) -> dict:
        return {"medtrain_run_config": RUN_CONFIG_FORMAT, "task": self.task, "medtrain_version": __version__,
                "arguments": self.arguments(), "resolved": self.resolved(), "resume_from": self.resume_from,
                "notes": list(self.notes)}

    def log(self) -> None:
        args = " ".join(f"--{k} {_flag_text(v)}" for k, v in self.arguments().items())
        logger.info("Run configuration (%s): %s%s", self.task, args,
                    "".join(f"\n  resolved: {n}" for n in self.notes))

    def save(self) -> str:
        """Write run_config.json into output_dir (atomically); returns its path."""
        out_dir = self.training.output_dir
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, RUN_CONFIG)
        tmp = f"{path}.tmp.{socket.gethostname()}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1, ensure_ascii=False, default=str)
        os.replace(tmp, path)
        return path


SECRETS = ("hub_token", "push_to_hub_token", "hf_hub_token")  # never written: give them again on a rerun


def _plain(value, name: str = ""):
    """A JSON-ready value (enums by value, tuples as lists); secrets are left out."""
    if name in SECRETS:
        return None
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _flag_text(value) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def resolve_run(task: str, parsed: Parsed, rank: int = 0, default_model: Optional[Callable[[ModelArguments], str]] = None,
                default_data: Optional[str] = None,
                resolve_task: Optional[Callable[[ModelArguments, DataArguments, frozenset, Callable], None]] = None,
                has_stream_state: Optional[Callable[[str, int], bool]] = None,
                locate_dataset: Optional[Callable[[ModelArguments, DataArguments], str]] = None) -> RunConfig:
    """Settle the run's configuration (see the module docstring) and freeze it.

    default_model(model_args) -> the model path when none is given (the demo); default_data: the
    training data when neither data nor a mixture is given; resolve_task(model, data, given, change):
    the task's own defaults, each set with change(args_object, name, value, why); has_stream_state(
    checkpoint, rank): whether a checkpoint holds this rank's streaming position; locate_dataset(
    model, data) -> the local directory of a --dataset_name that is not one (a hub download)."""
    model, data, training = (copy.deepcopy(o) for o in parsed.objects[:3])
    extras = tuple(copy.deepcopy(o) for o in parsed.objects[3:])
    given = set(parsed.given)
    notes: list[str] = []

    def changed(obj, name, value, why, rerun: bool = True):
        """Set a resolved value with the reason (a note in run_config.json). rerun=False: the value
        follows from other arguments on a rerun too, so it is not written among `arguments`."""
        setattr(obj, name, value)
        if rerun:
            given.add(name)
        notes.append(f"--{name} {_flag_text(_plain(value))}: {why}")

    user_data = sorted(parsed.given & {"train_file_dir", "mixture", "dataset_name"})
    if model.model_name_or_path is None and default_model is not None and user_data:
        raise ArgumentError(f"--{user_data[0]} is given without --model_name_or_path: name the model to train "
                            "(e.g. --model_name_or_path Qwen/Qwen2.5-0.5B, or a local directory; MODEL=... with "
                            "run_pt.sh/run_sft.sh). The embedded demo model runs only when neither a model nor "
                            "data is given.")
    if model.model_name_or_path is None and default_model is not None:
        changed(model, "model_name_or_path", default_model(model), "no --model_name_or_path: the embedded demo model")
    if data.dataset_name:
        _resolve_dataset(model, data, changed, locate_dataset)
    if not data.train_file_dir and not data.mixture and default_data:
        changed(data, "train_file_dir", [default_data], "no --train_file_dir: the demo data")
    _resolve_medicalgpt_flags(model, data, training, parsed.given, changed)
    if resolve_task is not None:
        resolve_task(model, data, frozenset(given), changed)
    if data.max_train_samples and data.max_train_samples_mode is None:
        changed(data, "max_train_samples_mode", "first", "--max_train_samples keeps the first rows in file order "
                "(pretraining's default)")
    if data.max_train_samples and data.max_train_samples_mode == "random" and data.streaming:
        notes.append("--max_train_samples with --streaming: the first rows of the shuffled stream (a stream cannot "
                     "be sampled across all files without reading it whole)")
    if data.streaming and training.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps: a stream has no length to derive the number of steps "
                         "from (e.g. --max_steps 10000)")
    limit = model.model_max_length
    if limit and data.block_size > limit:
        logger.warning("--block_size %d is over --model_max_length %d: using %d", data.block_size, limit, limit)
        changed(data, "block_size", limit, f"capped by --model_max_length {limit}")
    if data.group_by_length and not data.streaming:
        training.train_sampling_strategy = "group_by_length"
    if data.mixture and not data.streaming:
        training.train_sampling_strategy = "sequential"  # the blended order is the order
    resume_choice = resume_arg(training.resume_from_checkpoint)
    complete = None
    if resume_choice in (AUTO, True):  # a rerun of a finished job trains nothing (not step max_steps + 1)
        complete = finished_run(training.output_dir, training.max_steps, training.num_train_epochs)
    resume = None if complete else resolve_resume(resume_choice, training.output_dir, rank)
    if data.streaming and resume and not training.ignore_data_skip and has_stream_state is not None \
            and has_stream_state(resume, rank):
        # the stream restarts at its saved position: the Trainer must not replay the batches before it
        training.ignore_data_skip = True
    for obj in (model, data, *extras):
        if hasattr(obj, "freeze"):
            obj.freeze()
    return RunConfig(task, model, data, training, extras, frozenset(given), resume, tuple(notes), complete,
                     frozenset(parsed.given))


def flash_attention_available() -> tuple[bool, str]:
    """(whether FlashAttention-2 can run here, why not)."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return False, "no GPU here"
    if importlib.util.find_spec("flash_attn") is None:
        return False, "the flash_attn package is not installed (pip install flash-attn --no-build-isolation)"
    return True, ""


def _resolve_dataset(model, data, changed, locate_dataset) -> None:
    """--dataset_name: a local dataset directory, or a hub dataset saved as one (locate_dataset); its
    train split becomes the training data, its validation split the evaluation data (unless
    --validation_file_dir is given). Not written among the rerun arguments: --dataset_name is."""
    from medtrain.data.sources import dataset_splits

    name = data.dataset_name
    if os.path.isdir(name):
        if data.dataset_config_name:
            raise ArgumentError(f"--dataset_config_name {data.dataset_config_name}: {name} is a local dataset "
                                "directory, which has no configurations; drop the flag (or give the hub name)")
        root = name
    elif locate_dataset is not None:
        root = locate_dataset(model, data)
    else:
        raise ArgumentError(f"--dataset_name {name}: not a local dataset directory")
    splits = dataset_splits(root)
    changed(data, "train_file_dir", [splits["train"]], f"--dataset_name {name}: its train split", rerun=False)
    if "validation" in splits and not data.validation_file_dir:
        changed(data, "validation_file_dir", [splits["validation"]], f"--dataset_name {name}: its validation split",
                rerun=False)


def _resolve_medicalgpt_flags(model, data, training, typed: frozenset, changed) -> None:
    """MedicalGPT's flags in terms of ours (README: Coming from MedicalGPT), each change noted."""
    if model.model_type:
        changed(model, "model_type", model.model_type, "not needed: the architecture is read from the model's "
                "config.json (AutoModelForCausalLM)")
    if model.qlora:
        if not model.load_in_4bit:
            changed(model, "load_in_4bit", True, "--qlora: the base model loaded in 4 bits (NF4, double quantization)")
        if not model.use_peft:
            changed(model, "use_peft", True, "--qlora: a LoRA adapter is trained on the 4-bit model")
    if model.flash_attn:
        if model.attn_implementation not in ("auto", "flash_attention_2"):
            raise ArgumentError(f"--flash_attn true conflicts with --attn_implementation "
                                f"{model.attn_implementation}: give one of them")
        ok, why = flash_attention_available()
        if ok:
            changed(model, "attn_implementation", "flash_attention_2", "--flash_attn true")
        else:
            logger.warning("--flash_attn: FlashAttention-2 cannot be used (%s); using sdpa", why)
            changed(model, "attn_implementation", "sdpa", f"--flash_attn true, but {why}: sdpa instead")
    if model.neft_alpha > 0:
        current = training.neftune_noise_alpha
        if current is not None and current != model.neft_alpha:
            raise ArgumentError(f"--neft_alpha {model.neft_alpha} and --neftune_noise_alpha {current} disagree: "
                                "give one of them")
        changed(training, "neftune_noise_alpha", model.neft_alpha, "--neft_alpha: NEFTune noise on the input "
                "embeddings while training (the Trainer's NEFTune)")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if model.device_map is not None and (world > 1 or training.deepspeed):
        changed(model, "device_map", None, f"--device_map is for a single process; here each of the {world} ranks "
                "holds its own copy of the model (DDP/DeepSpeed), as in MedicalGPT")
    train_typed, eval_typed = "do_train" in typed, "do_eval" in typed
    if not train_typed and not eval_typed:
        changed(training, "do_train", True, "neither --do_train nor --do_eval: train, then evaluate when there is "
                "evaluation data (medtrain's default)", rerun=False)
    elif eval_typed and not train_typed and training.do_eval:
        changed(training, "do_train", False, "--do_eval without --do_train: evaluate only, as transformers' "
                "example scripts (add --do_train to train)", rerun=False)


def is_run_config(data: dict) -> bool:
    return isinstance(data, dict) and "medtrain_run_config" in data
