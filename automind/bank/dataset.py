"""Streaming a bank into training: a torch IterableDataset over shards, chunk-shuffled.

Memory stays bounded by ``buffer_shards`` shards, whatever the bank's size: each epoch
visits the shards in a new random order, pools ``buffer_shards`` of them, shuffles their
rows and yields them. With several DataLoader workers, each reads its own share of shards.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .bank import Bank


class BankDataset(IterableDataset):
    """Yields (θ, x) float32 tensors (or θ alone without a feature set) from a bank."""

    def __init__(self, bank: Bank | str, features: str | None = None, status="ok",
                 index_range: tuple[int, int] | None = None, shuffle: bool = True,
                 buffer_shards: int = 4, seed: int = 0, batch_size: int | None = None,
                 shards: set[str] | None = None):
        self.bank = bank if isinstance(bank, Bank) else Bank(bank)
        self.features, self.status, self.index_range = features, status, index_range
        self.shuffle, self.buffer_shards, self.seed = shuffle, max(1, buffer_shards), seed
        self.batch_size = batch_size
        self.shards = shards  # restrict to these shard names (e.g. a validation split)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the shuffling order (call before each epoch)."""
        self.epoch = epoch

    def _my_records(self, rng: np.random.Generator) -> list:
        records = [r for r in self.bank.records if self.shards is None or r.name in self.shards]
        if self.shuffle:
            records = [records[i] for i in rng.permutation(len(records))]
        worker = get_worker_info()
        if worker is not None:
            records = records[worker.id::worker.num_workers]
        return records

    def _emit(self, pool: list, rng: np.random.Generator):
        theta = np.concatenate([p[1] for p in pool]).astype(np.float32)
        x = None if self.features is None else np.concatenate([p[3] for p in pool])
        order = rng.permutation(len(theta)) if self.shuffle else np.arange(len(theta))
        step = self.batch_size or 1
        for start in range(0, len(order), step):
            rows = order[start:start + step]
            t = torch.from_numpy(theta[rows] if self.batch_size else theta[rows[0]])
            if x is None:
                yield t
            else:
                yield t, torch.from_numpy(x[rows] if self.batch_size else x[rows[0]])

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        pool = []
        for part in self.bank.iter_rows(self.features, self.status, self.index_range,
                                        records=self._my_records(rng)):
            pool.append(part)
            if len(pool) >= self.buffer_shards:
                yield from self._emit(pool, rng)
                pool = []
        if pool:
            yield from self._emit(pool, rng)
