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
from medtrain.config.arguments import DataArguments, ModelArguments, Parsed
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
                has_stream_state: Optional[Callable[[str, int], bool]] = None) -> RunConfig:
    """Settle the run's configuration (see the module docstring) and freeze it.

    default_model(model_args) -> the model path when none is given (the demo); default_data: the
    training data when neither data nor a mixture is given; resolve_task(model, data, given, change):
    the task's own defaults, each set with change(args_object, name, value, why); has_stream_state(
    checkpoint, rank): whether a checkpoint holds this rank's streaming position."""
    model, data, training = (copy.deepcopy(o) for o in parsed.objects[:3])
    extras = tuple(copy.deepcopy(o) for o in parsed.objects[3:])
    given = set(parsed.given)
    notes: list[str] = []

    def changed(obj, name, value, why):
        setattr(obj, name, value)
        given.add(name)
        notes.append(f"--{name} {_flag_text(_plain(value))}: {why}")

    if model.model_name_or_path is None and default_model is not None:
        changed(model, "model_name_or_path", default_model(model), "no --model_name_or_path: the embedded demo model")
    if not data.train_file_dir and not data.mixture and default_data:
        changed(data, "train_file_dir", [default_data], "no --train_file_dir: the demo data")
    if resolve_task is not None:
        resolve_task(model, data, frozenset(given), changed)
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
    return RunConfig(task, model, data, training, extras, frozenset(given), resume, tuple(notes), complete)


def is_run_config(data: dict) -> bool:
    return isinstance(data, dict) and "medtrain_run_config" in data
