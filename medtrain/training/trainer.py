"""`MedTrainer`: the HF Trainer with the few data-side changes our datasets need.

- Streaming datasets are already split by rank and dataloader worker and yield whole batches, so
  the train dataloader is a plain DataLoader over them (accelerate's wrappers would make every rank
  read everything, or rank 0 read for all).
- Each batch's `BatchMeta` (real vs padded tokens, streaming cursors) is taken off before the model sees
  it: padding statistics go to the run summary; the cursors of the last trained batch of every
  (rank, worker) slot are saved with each checkpoint (`data_state/rank<r>.json`), which is how a
  resumed streaming run continues at the very next block without replaying the stream. The position
  is plain JSON (numpy arrays as `{"__ndarray__": dtype, "data": [...]}`), never a pickle: reading a
  checkpoint from someone else must not run their code. A `rank<r>.pt` of an older version (a pickle)
  is refused, not unpickled.
- On the token store, `--group_by_length` uses the block lengths of the block index (no pass over
  the data).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from medtrain.data.block_dataset import BlockDataset
from medtrain.data.packing import padding_fraction
from medtrain.data.rows import META_KEY, BatchMeta, MixerCursor
from medtrain.errors import DataError, write_failure
from medtrain.resilience import checkpoints as resilience

logger = logging.getLogger(__name__)

DATA_STATE_DIR = "data_state"


class StreamCursorTracker:
    """The next position of every streaming slot of this rank, from the cursors of trained batches."""

    def __init__(self, world: int, workers: int, rotation: int = 0, slots: dict | None = None,
                 config: str | None = None):
        self.world, self.workers, self.rotation, self.config = world, max(1, workers), rotation, config
        self.slots: dict = dict(slots or {})
        self.starts: dict = {}
        self.batches = 0

    def update(self, cursors: list) -> None:
        self.batches += 1
        for c in cursors:
            slot = str(c.slot)
            if isinstance(c, MixerCursor):  # a mixture's token counts: kept as they are
                self.slots[slot] = {"slot": slot, "mixer": True, "tokens": list(c.tokens)}
                continue
            if c.start is not None:
                self.starts[slot] = (c.epoch, c.window, c.start)
            start = self.starts.get(slot)
            if start is None or start[:2] != (c.epoch, c.window):
                prev = self.slots.get(slot)  # a window begun before this run resumed
                start = (c.epoch, c.window, prev["start"]) if prev else None
            self.slots[slot] = {"epoch": c.epoch, "window": c.window, "batch": c.batch + 1,
                                "rows": c.rows + c.size, "start": start[2] if start else None,
                                "window_size": c.window_size, "counts": c.counts}

    def reader_counts(self) -> list:
        """The counters of every reader slot of this rank, as of its last trained batch."""
        return [s.get("counts") for s in self.slots.values() if s.get("counts")]

    def state_dict(self) -> dict:
        return {"world": self.world, "workers": self.workers, "config": self.config,
                "rotation": (self.rotation + self.batches) % self.workers, "slots": self.slots}


class ChunkedRandomSampler(torch.utils.data.Sampler):
    """The order accelerate's SeedableRandomSampler gives the Trainer (a permutation from
    `torch.randperm` with a generator seeded `data_seed` (else torch's initial seed) + epoch), yielded in
    chunks from the permutation tensor instead of from a Python list of every block number: 8 bytes per
    block instead of about 36 (at 100 million blocks: 0.8 GB instead of 3.6 GB per rank). Not a
    RandomSampler, so accelerate keeps it; every rank draws the same order and takes its shard."""

    CHUNK = 1 << 16

    def __init__(self, n: int, data_seed=None):
        self.n = n
        self.initial_seed = data_seed if data_seed is not None else torch.random.initial_seed()
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.initial_seed + self.epoch)
        order = torch.randperm(self.n, generator=generator)
        for start in range(0, self.n, self.CHUNK):
            yield from order[start: start + self.CHUNK].tolist()
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class MedTrainer(Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens_seen = 0
        self.target_tokens_seen = 0
        self.real_tokens = 0
        self.slot_tokens = 0
        self.cursor_tracker: StreamCursorTracker | None = None
        self.source_tokens: dict = {}  # realized training tokens per mixture source (this rank)
        self.keep_checkpoints = None  # save_total_limit, applied by resilience.rotate_checkpoints

    # -- data ---------------------------------------------------------------------------------------
    def get_train_dataloader(self):
        ds = self.train_dataset
        if isinstance(ds, torch.utils.data.IterableDataset):
            a = self.args
            resume = getattr(ds, "resume_state", None) or {}
            key = ds.config_key() if hasattr(ds, "config_key") else None
            self.cursor_tracker = StreamCursorTracker(getattr(ds, "world", 1), a.dataloader_num_workers,
                                                      resume.get("rotation", 0), resume.get("slots"), key)
            return torch.utils.data.DataLoader(
                ds, batch_size=None, collate_fn=self.data_collator, num_workers=a.dataloader_num_workers,
                pin_memory=a.dataloader_pin_memory,
                persistent_workers=a.dataloader_persistent_workers and a.dataloader_num_workers > 0,
                prefetch_factor=a.dataloader_prefetch_factor if a.dataloader_num_workers > 0 else None)
        return super().get_train_dataloader()

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length":
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        dataset=ds, lengths=row_lengths(ds))
        if (isinstance(ds, BlockDataset) and self.args.train_sampling_strategy == "random"
                and self.args.accelerator_config.use_seedable_sampler):
            return ChunkedRandomSampler(len(ds), self.args.data_seed)
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        if self.args.train_sampling_strategy == "group_by_length":
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedSampler(self.args.eval_batch_size, dataset=eval_dataset,
                                        lengths=row_lengths(eval_dataset),
                                        generator=torch.Generator().manual_seed(seed))
        return super()._get_eval_sampler(eval_dataset)

    def _prepare_inputs(self, inputs):
        meta: BatchMeta | None = inputs.pop(META_KEY, None)
        if meta is not None and self.model.training:
            self.real_tokens += meta.real_tokens
            self.slot_tokens += meta.slots
            if meta.cursors and self.cursor_tracker is not None:
                self.cursor_tracker.update(meta.cursors)
            for name, n in meta.sources.items():
                self.source_tokens[name] = self.source_tokens.get(name, 0) + n
        return super()._prepare_inputs(inputs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.tokens_seen += int(inputs["input_ids"].numel())
        self.target_tokens_seen += int((inputs["labels"] != -100).sum())
        return super().training_step(model, inputs, num_items_in_batch)

    def token_counts(self) -> tuple[int, int]:
        return self.tokens_seen, self.target_tokens_seen

    def batch_padding_fraction(self) -> float | None:
        return padding_fraction(self.real_tokens, self.slot_tokens) if self.slot_tokens else None

    # -- checkpoints (complete or ignored: see resilience.py) ---------------------------------------
    def train(self, *args, **kwargs):
        with resilience.no_trainer_rotation(self.args) as self.keep_checkpoints:
            return super().train(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        checkpoint = os.path.join(self._get_output_dir(trial=trial),
                                  f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        resilience.begin_checkpoint(checkpoint, self.args)
        try:
            with resilience.no_trainer_rotation(self.args) as limit:
                super()._save_checkpoint(model, trial)
            if self.cursor_tracker is not None:
                folder = os.path.join(checkpoint, DATA_STATE_DIR)
                os.makedirs(folder, exist_ok=True)
                save_stream_state(folder, self.args.process_index, self.cursor_tracker.state_dict())
        except Exception as e:  # e.g. a full disk: torch says "basic_ios::clear: iostream error", safetensors
            # a SafetensorError
            failure = write_failure(e, getattr(e, "filename", None) or checkpoint, f"saving {checkpoint}",
                                    needed=previous_checkpoint_bytes(self.args.output_dir))
            if failure is None:
                raise
            raise DataError(f"{failure} (the checkpoint stays incomplete: --resume_from_checkpoint auto skips "
                            "it)") from None
        resilience.complete_checkpoint(checkpoint, self.args, self.state, limit or self.keep_checkpoints)

    def save_model(self, output_dir=None, _internal_call=False):
        try:
            return super().save_model(output_dir, _internal_call)
        except Exception as e:  # filtered below: only a failed write the user can fix becomes a message
            if _internal_call:  # inside a checkpoint save, which says so itself
                raise
            target = output_dir or self.args.output_dir
            failure = write_failure(e, getattr(e, "filename", None) or target, "saving the final model")
            if failure is None:
                raise
            raise failure from None


def previous_checkpoint_bytes(output_dir: str):
    """The size of the newest complete checkpoint (what the next one will need, about), or None."""
    found = resilience.latest_complete_checkpoint(output_dir, warn=False, verify=False)
    if found is None:
        return None
    try:
        with open(os.path.join(found, resilience.COMPLETE_MARKER)) as fh:
            return int(json.load(fh).get("bytes") or 0) or None
    except (OSError, ValueError):
        return None


def row_lengths(dataset) -> list[int]:
    """Tokens of each row: from the block index where the dataset has one (no pass over the data),
    else by reading the rows (small evaluation sets)."""
    if isinstance(dataset, BlockDataset):
        return dataset.lengths().tolist()
    return [len(dataset[i]) for i in range(len(dataset))]


def has_stream_state(checkpoint: str, rank: int) -> bool:
    """Whether `checkpoint` holds this rank's streaming position."""
    folder = os.path.join(checkpoint, DATA_STATE_DIR)
    return os.path.isdir(folder) and any(name.startswith(f"rank{rank}.") for name in os.listdir(folder))


# -- the streaming position as plain data -----------------------------------------------------------
_ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float: the only arrays a position holds


def _to_plain(obj):
    """`obj` with numpy values turned into JSON values (arrays tagged with their dtype), tuples into lists."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot save an array of dtype {obj.dtype} in a streaming position")
        return {"__ndarray__": obj.dtype.str, "shape": list(obj.shape), "data": obj.ravel().tolist()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _from_plain(obj: dict):
    """json object_hook: a tagged array back to numpy (numeric and bool dtypes only)."""
    if "__ndarray__" in obj:
        dtype = np.dtype(str(obj["__ndarray__"]))
        if dtype.kind not in _ARRAY_KINDS:
            raise ValueError(f"array of dtype {dtype} (only numbers and booleans are read)")
        return np.asarray(obj["data"], dtype=dtype).reshape(obj["shape"])
    return obj


def stream_state_path(checkpoint: str, rank: int) -> str:
    return os.path.join(checkpoint, DATA_STATE_DIR, f"rank{rank}.json")


def save_stream_state(folder: str, rank: int, state: dict) -> str:
    """Write this rank's streaming position into `folder` (a checkpoint's data_state/) atomically."""
    path = os.path.join(folder, f"rank{rank}.json")
    resilience.write_json_atomic(path, _to_plain(state))
    return path


def load_stream_state(checkpoint: str, rank: int):
    """The streaming position this rank saved in `checkpoint`, or None if it has none. Read as JSON;
    an older pickled position (`rank<r>.pt`) is refused with the fix, never unpickled."""
    path = stream_state_path(checkpoint, rank)
    legacy = os.path.join(checkpoint, DATA_STATE_DIR, f"rank{rank}.pt")
    if not os.path.exists(path):
        if os.path.exists(legacy):
            raise DataError(
                f"{legacy}: this streaming position was saved by an older medtrain as a pickle, and reading a "
                "pickle can run any code it holds, so it is not read. Resume with --ignore_data_skip true (the "
                "data stream restarts from its beginning; model and optimizer state are restored), or from a "
                "checkpoint saved by this version (data_state/rank<r>.json)")
        return None
    try:
        with open(path) as fh:
            state = json.load(fh, object_hook=_from_plain)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DataError(f"{path}: the streaming position cannot be read ({type(e).__name__}: {e}). Resume from "
                        "the checkpoint before this one, or pass --ignore_data_skip true to restart the data "
                        "stream from its beginning") from None
    if not isinstance(state, dict) or not isinstance(state.get("slots"), dict):
        raise DataError(f"{path}: not a streaming position (expected a JSON object with 'slots'). Resume from the "
                        "checkpoint before this one, or pass --ignore_data_skip true")
    return state
