"""Dataset mixtures: several sources trained on in chosen proportions of *tokens*.

A mixture file (JSON or YAML; several may be given, their sources are concatenated):

    {"sources": [
        {"name": "guidelines", "path": "data/pretrain/guidelines", "weight": 0.2},
        {"name": "zh", "path": ["data/pretrain/medical_zh.jsonl"], "weight": 0.5, "text_field": "text"},
        {"name": "en", "path": "data/pretrain/medical_en.txt", "weight": 0.3, "on_exhausted": "repeat"}]}

Each source has a name, a `path` (file, directory, prepared token store, or a list of them), an
optional `text_field`, and either a `weight` (share of training tokens) or a `tokens` budget per
epoch (all sources use the same kind); `num_tokens_avg` (the source's estimated size in tokens) is
only used to report estimated epochs before the source is prepared. `on_exhausted` says what happens
when the source runs out of blocks before the epoch ends: `stop` (the default; the epoch ends) or
`repeat` (its blocks are used again in a new order, with a warning saying how often).

The order is exact and deterministic: each next block goes to the source furthest below its share
of the tokens so far (Megatron-style blending, by tokens), so at every prefix of the order each
source is within one block of its target; within a source, blocks come in an order seeded by
(seed, epoch, source), so each epoch differs. On the token store the order is a precomputed sample
index; on the streaming path the same rule interleaves the sources' streams, resumably.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch
from transformers import TrainerCallback

from medtrain.data.rows import MixerCursor
from medtrain.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class Source:
    name: str
    paths: list
    weight: Optional[float] = None
    tokens: Optional[int] = None
    text_field: Optional[str] = None
    on_exhausted: str = "stop"
    num_tokens_avg: Optional[float] = None
    origin: str = ""  # "<file>: sources[i]" for messages
    share: float = 0.0  # normalised weight


def load_mixtures(files) -> list[Source]:
    """Read and validate mixture files; every problem names the file and the entry."""
    sources: list[Source] = []
    for path in ([files] if isinstance(files, str) else files):
        if not os.path.exists(path):
            raise DataError(f"--mixture: file does not exist: {path}")
        text = open(path, encoding="utf-8").read()
        try:
            if path.endswith((".yaml", ".yml")):
                import yaml
                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as e:
            raise DataError(f"{path}: not valid JSON/YAML ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list) or not data["sources"]:
            raise DataError(f'{path}: expected {{"sources": [{{"name": ..., "path": ..., "weight": ...}}, ...]}}')
        base = os.path.dirname(os.path.abspath(path))
        for i, entry in enumerate(data["sources"]):
            where = f"{path}: sources[{i}]"
            if not isinstance(entry, dict) or not entry.get("name") or "path" not in entry:
                raise DataError(f"{where}: each source needs a 'name' and a 'path'")
            where = f"{path}: sources[{i}] ({entry['name']!r})"
            unknown = set(entry) - {"name", "path", "weight", "tokens", "text_field", "on_exhausted", "num_tokens_avg"}
            if unknown:
                raise DataError(f"{where}: unknown key(s) {sorted(unknown)}")
            raw = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            paths = [p if os.path.isabs(p) or os.path.exists(p) else os.path.join(base, p) for p in raw]
            missing = [p for p in paths if not os.path.exists(p)]
            if missing:
                raise DataError(f"{where}: path does not exist: {missing[0]}")
            policy = entry.get("on_exhausted", "stop")
            if policy not in ("stop", "repeat"):
                raise DataError(f"{where}: on_exhausted must be 'stop' or 'repeat', not {policy!r}")
            if ("weight" in entry) == ("tokens" in entry):
                raise DataError(f"{where}: give either a 'weight' or a 'tokens' budget")
            sources.append(Source(entry["name"], paths, entry.get("weight"), entry.get("tokens"),
                                  entry.get("text_field"), policy, entry.get("num_tokens_avg"), where))
    names = [s.name for s in sources]
    bad_names = [s.origin for s in sources if "/" in s.name or s.name == "mix"]
    if bad_names:
        raise DataError(f"{bad_names[0]}: a source name may not contain '/' or be 'mix' (reserved)")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DataError(f"--mixture: source names must be unique; repeated: {sorted(dup)}")
    kinds = {s.weight is not None for s in sources}
    if len(kinds) > 1:
        raise DataError("--mixture: use weights for every source or token budgets for every source, not both")
    values = [s.weight if s.weight is not None else s.tokens for s in sources]
    bad = [s.origin for s, v in zip(sources, values) if not isinstance(v, (int, float)) or v <= 0]
    if bad:
        raise DataError(f"{bad[0]}: weights and token budgets must be positive numbers")
    total = float(sum(values))
    if sources[0].weight is not None and abs(total - 1.0) > 1e-6:
        logger.warning("mixture weights add up to %g, not 1: normalised to %s", total,
                       ", ".join(f"{s.name}={v / total:.4f}" for s, v in zip(sources, values)))
    for s, v in zip(sources, values):
        s.share = v / total
    return sources


def blend(block_tokens: list, shares: list, policies: list, seed: int, epoch: int, length: Optional[int] = None,
          budget: Optional[int] = None):
    """The mixture order of one epoch: arrays (source, block) of equal length, and repeats per source.

    `block_tokens[s]` holds the tokens of each block of source s. The next block goes to the source
    furthest below its share of the tokens so far. The epoch ends when a 'stop' source runs out, or,
    if every source repeats, once every source was seen whole, or after `length` picks, or when the
    total reaches the token `budget`.
    """
    n = len(block_tokens)
    perms = [np.random.default_rng([seed, epoch, s, 0]).permutation(len(b)) for s, b in enumerate(block_tokens)]
    pos, reps, seen_whole = [0] * n, [0] * n, [False] * n
    done_tokens = [0] * n
    total = 0
    src_out, blk_out = [], []
    mean_block = max(1.0, float(np.mean([b.mean() for b in block_tokens if len(b)]))) if any(
        len(b) for b in block_tokens) else 1.0
    while True:
        if length is not None and len(src_out) >= length:
            break
        if budget is not None and total >= budget:
            break
        target = total + mean_block
        s = max(range(n), key=lambda k: (shares[k] * target - done_tokens[k], -k))
        if pos[s] >= len(perms[s]):
            seen_whole[s] = True
            if length is None and (policies[s] == "stop" or all(seen_whole)):
                break
            reps[s] += 1
            perms[s] = np.random.default_rng([seed, epoch, s, reps[s]]).permutation(len(block_tokens[s]))
            pos[s] = 0
        b = int(perms[s][pos[s]])
        pos[s] += 1
        src_out.append(s)
        blk_out.append(b)
        t = int(block_tokens[s][b])
        done_tokens[s] += t
        total += t
    return np.asarray(src_out, dtype=np.int32), np.asarray(blk_out, dtype=np.int64), reps


class MixtureDataset(torch.utils.data.Dataset):
    """Map-style mixture over the sources' block datasets, in the blended order of the current epoch
    (set by `set_epoch`; a callback does it at each epoch start). Every epoch has the length of the
    first, so the Trainer's step counts hold."""

    def __init__(self, names: list, datasets: list, shares: list, policies: list, seed: int,
                 budget: Optional[int] = None, max_blocks: Optional[int] = None):
        self.names, self.datasets, self.shares, self.policies = names, datasets, shares, policies
        self.seed, self.budget, self.max_blocks = seed, budget, max_blocks
        self.block_tokens = [d.lengths() for d in datasets]
        self.epoch = 0
        self._orders: dict = {}
        src, _, _ = self._order(0)
        self.length = len(src) if max_blocks is None else min(len(src), max_blocks)

    def _order(self, epoch: int):
        if epoch not in self._orders:
            length = getattr(self, "length", None)
            self._orders = {epoch: blend(self.block_tokens, self.shares, self.policies, self.seed, epoch,
                                         length=length, budget=None if length else self.budget)}
        return self._orders[epoch]

    def planned_tokens(self, epoch: int = 0) -> int:
        """Tokens of the blended order of `epoch` (the whole epoch, before --max_train_samples)."""
        src, blk, _ = self._order(epoch)
        return int(sum(int(self.block_tokens[s][b]) for s, b in zip(src, blk)))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def repeats(self, epoch: int = 0) -> dict:
        return {n: r for n, r in zip(self.names, self._order(epoch)[2])}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        src, blk, _ = self._order(self.epoch)
        return replace(self.datasets[src[i]][int(blk[i])], source=self.names[src[i]])


class MixtureEpochCallback(TrainerCallback):
    """Tells the mixture dataset which epoch begins (so each epoch has its own seeded order)."""

    def __init__(self, dataset: MixtureDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kw):
        self.dataset.set_epoch(int(state.epoch or 0))


class StreamingMixture(torch.utils.data.IterableDataset):
    """The sources' streams interleaved by the same token-deficit rule, as batches, resumable: each
    batch carries the cursors of the source rows in it and the mixer's token counts."""

    def __init__(self, names: list, streams: list, shares: list, batch_size: int):
        self.names, self.streams, self.shares, self.batch_size = names, streams, shares, batch_size
        if any(s.batch_size != 1 for s in streams):
            raise DataError("the streams of a StreamingMixture yield one row per batch (batch_size=1): the mixer "
                             "forms the batches")
        self.rank, self.world = streams[0].rank, streams[0].world
        self.document_aware = streams[0].document_aware
        self.resume_state: Optional[dict] = None

    def config_key(self) -> str:
        import hashlib

        return hashlib.sha256(repr([self.names, self.shares, self.batch_size] +
                                   [s.config_key() for s in self.streams]).encode()).hexdigest()[:16]

    def load_state_dict(self, state: dict, workers: int) -> None:
        if state.get("config") not in (None, self.config_key()):
            raise DataError("the checkpoint's streaming position belongs to another mixture or other data "
                             "settings; resume with the same ones, or pass --ignore_data_skip true")
        state = dict(state, config=None)
        for name, stream in zip(self.names, self.streams):
            sub = dict(state, slots={k[len(name) + 1:]: v for k, v in state["slots"].items()
                                     if k.startswith(name + "/")})
            stream.load_state_dict(sub, workers)
        self.resume_state = state

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        rotation = (self.resume_state or {}).get("rotation", 0)
        slot = self.rank * workers + (wid + rotation) % workers
        key = f"mix/{slot}"
        saved = ((self.resume_state or {}).get("slots") or {}).get(key)
        done = list(saved["tokens"]) if saved else [0] * len(self.streams)
        its = [iter(s) for s in self.streams]
        batch = []
        while True:
            total = sum(done)
            k = max(range(len(its)), key=lambda j: (self.shares[j] * (total + 1) - done[j], -j))
            row = next(its[k])[0]  # each source stream yields batches of one row
            cursors = [replace(c, slot=f"{self.names[k]}/{c.slot}") for c in row.cursors]
            row = replace(row, source=self.names[k], cursors=cursors)
            done[k] += len(row)
            batch.append(row)
            if len(batch) == self.batch_size:
                batch[-1].cursors = batch[-1].cursors + [MixerCursor(key, list(done))]
                yield batch
                batch = []

    def rows(self):
        for batch in self:
            yield from batch


def plan_report(sources: list[Source], available: dict, planned_total: Optional[int]) -> dict:
    """Planned tokens per source and the estimated epochs of each (how often it is used)."""
    report = {}
    for s in sources:
        avail = available.get(s.name)
        planned = s.tokens if s.tokens is not None else (round(s.share * planned_total) if planned_total else None)
        report[s.name] = {"share": round(s.share, 6), "available_tokens": avail, "planned_tokens": planned,
                          "estimated_epochs": round(planned / avail, 3) if planned and avail else None,
                          "on_exhausted": s.on_exhausted}
    return report


def realized_report(plan: dict, realized: dict) -> dict:
    """The plan with the tokens each source really gave (summed over ranks) and its realized share."""
    total = sum(realized.values()) or 1
    out = {name: dict(entry, realized_tokens=int(realized.get(name, 0)),
                      realized_share=round(realized.get(name, 0) / total, 6)) for name, entry in plan.items()}
    logger.info("Mixture realized: %s", ", ".join(f"{n}={e['realized_tokens']:,} tokens ({e['realized_share']:.2%})"
                                                  for n, e in out.items()))
    return out


def log_plan(report: dict, what: str) -> None:
    lines = [f"  {n}: share {r['share']:.3f}, available {r['available_tokens']} tokens, planned "
             f"{r['planned_tokens']} tokens, ~{r['estimated_epochs']} pass(es) per epoch ({r['on_exhausted']} "
             "when exhausted)" for n, r in report.items()]
    logger.info("Mixture plan (%s):\n%s", what, "\n".join(lines))
