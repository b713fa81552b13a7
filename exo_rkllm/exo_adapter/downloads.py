"""exo's shard downloader for RKLLM models: the exo-rkllm models store instead of Hugging Face safetensors.

exo's own downloader fetches a model card's Hugging Face repo, all of it. For this engine the card's repo
is only where the tokenizer lives, so exo's web UI model list queried huggingface.co for every model
(failing offline) and its download button would fetch gigabytes of PyTorch weights the NPU cannot use.
Here the status is whether the compiled .rkllm file is in the models directory, and a download is
`exo-rkllm models pull` (the .rkllm file and the tokenizer). Imports exo: load only from the launcher.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import AsyncIterator

from exo.download.download_progress import RepoProgressEvent
from exo.download.shard_download import ShardDownloader
from exo.helpers import AsyncCallbackSystem
from exo.inference.shard import Shard

log = logging.getLogger("exo_rkllm.exo")


def _event(shard: Shard, repo: str, done: bool, size: int) -> RepoProgressEvent:
    size = max(size, 1)  # exo's UI reads downloaded == total as "downloaded": never 0 == 0 for a missing file
    return RepoProgressEvent(shard, repo, "main", int(done), 1, size if done else 0, 0, size, 0, timedelta(0), {},
                             "complete" if done else "not_started")


class RKLLMShardDownloader(ShardDownloader):
    """Status and downloads of the catalog's .rkllm files (simulated ones ship with the simulator)."""

    def __init__(self, simulated: bool) -> None:
        self.simulated = simulated
        self._on_progress: AsyncCallbackSystem = AsyncCallbackSystem()
        self._pulls: dict[str, asyncio.Task] = {}

    @property
    def on_progress(self) -> AsyncCallbackSystem:
        return self._on_progress

    def _cards(self):
        from exo_rkllm.catalog import load_catalog

        return [c for c in load_catalog().values() if c.simulated == self.simulated]

    async def ensure_shard(self, shard: Shard, inference_engine_name: str) -> Path:
        """The model's directory, pulling the .rkllm file and tokenizer first if they are missing."""
        from exo_rkllm.catalog import get_card
        from exo_rkllm.ops.store import ModelStore

        card = get_card(shard.model_id)
        store = ModelStore()
        if not store.is_installed(card):
            task = self._pulls.get(card.id)
            if task is None or task.done():
                log.info("exo asked for %s: pulling it into %s (exo-rkllm models pull)", card.id, store.root)
                task = self._pulls[card.id] = asyncio.create_task(
                    asyncio.to_thread(store.pull, card, log=lambda m: log.info("%s", m)))
            await task
        path = store.model_file(card)
        size = path.stat().st_size if path.is_file() else 0
        self._on_progress.trigger_all(shard, _event(shard, card.id, True, size))
        return path.parent

    async def get_shard_download_status(self, inference_engine_name: str) -> AsyncIterator[tuple[Path, RepoProgressEvent]]:
        from exo_rkllm.ops.store import ModelStore

        store = ModelStore()
        for card in self._cards():
            path = store.model_file(card)
            done = path.is_file()
            size = path.stat().st_size if done else (card.size_bytes or 0)
            yield path, _event(Shard(card.id, 0, card.layers - 1, card.layers), card.id, done, size)
