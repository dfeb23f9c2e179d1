"""`MedTrainer`: the HF Trainer with the few data-side changes our datasets need.

- Streaming datasets are already split by rank and dataloader worker, so the train dataloader is a
  plain DataLoader (accelerate's wrappers would make every rank read everything, or rank 0 read for
  all).
- Counts the tokens it trains on (slots and trained targets) for the run summary.
"""

from __future__ import annotations

import torch
from transformers import Trainer


class MedTrainer(Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens_seen = 0
        self.target_tokens_seen = 0

    def get_train_dataloader(self):
        ds = self.train_dataset
        if isinstance(ds, torch.utils.data.IterableDataset):
            a = self.args
            return torch.utils.data.DataLoader(
                ds, batch_size=self._train_batch_size, collate_fn=self.data_collator,
                num_workers=a.dataloader_num_workers, pin_memory=a.dataloader_pin_memory,
                persistent_workers=a.dataloader_persistent_workers and a.dataloader_num_workers > 0,
                prefetch_factor=a.dataloader_prefetch_factor if a.dataloader_num_workers > 0 else None)
        return super().get_train_dataloader()

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.tokens_seen += int(inputs["input_ids"].numel())
        self.target_tokens_seen += int((inputs["labels"] != -100).sum())
        return super().training_step(model, inputs, num_items_in_batch)

    def token_counts(self) -> tuple[int, int]:
        return self.tokens_seen, self.target_tokens_seen
