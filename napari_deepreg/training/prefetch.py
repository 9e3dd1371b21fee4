"""Draw training batches in a background thread while the model trains on the previous ones.

The producer calls ``task.sample("train", ...)`` in order on the one sampler generator, so the
batches are exactly those of a run without prefetching. Each batch travels with the generator
state *after* it was drawn; the trainer checkpoints the state after the last batch it consumed,
so a resumed run draws the same next batch whether or not it prefetches.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import torch
from torch import Tensor

from .task import Batch, TrainTask


class Prefetcher:
    """Up to ``depth`` batches drawn ahead by a daemon thread.

    Requires that ``task.sample`` draws only from its ``generator`` argument (the TrainTask
    contract); torch ops release the GIL, so sampling overlaps with the training step.
    """

    def __init__(
        self, task: TrainTask, batch_size: int, sampler: torch.Generator, depth: int
    ) -> None:
        self.task = task
        self.batch_size = batch_size
        self.sampler = sampler
        self.queue: queue.Queue[tuple[Batch | None, Tensor | None, BaseException | None]] = (
            queue.Queue(maxsize=max(1, depth))
        )
        self._stop = threading.Event()
        self.state_after_last: Tensor = sampler.get_state()
        self.thread = threading.Thread(target=self._produce, name="batch-prefetch", daemon=True)
        self.thread.start()

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self.task.sample("train", self.batch_size, self.sampler)
                item: tuple[Any, Any, Any] = (batch, self.sampler.get_state(), None)
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = (None, None, err)
            while not self._stop.is_set():
                try:
                    self.queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    def next(self) -> Batch:
        """The next batch in sampling order (re-raises an error of the sampler)."""
        batch, state, err = self.queue.get()
        if err is not None:
            raise err
        assert state is not None and batch is not None
        self.state_after_last = state
        return batch

    def close(self) -> None:
        """Stop the thread (batches drawn ahead are dropped; the generator state is not used)."""
        self._stop.set()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout=10)
