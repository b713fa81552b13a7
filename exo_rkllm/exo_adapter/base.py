"""exo's InferenceEngine and Shard when exo is installed, else local stand-ins with the same shape.

The stand-ins let the engine import and its contract tests run without exo (exo is an optional,
heavy extra that is not on PyPI). They mirror exo v0.0.15-alpha: the same abstract methods, the same
concrete infer_prompt, the same frozen Shard — but with per-instance session state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

import numpy as np

try:  # pragma: no cover - which branch runs depends on the environment
    from exo.inference.inference_engine import InferenceEngine
    from exo.inference.shard import Shard

    EXO_AVAILABLE = True
except ImportError:
    EXO_AVAILABLE = False

    @dataclass(frozen=True)
    class Shard:  # type: ignore[no-redef]
        """A contiguous range of a model's layers, as exo assigns them to a node."""

        model_id: str
        start_layer: int
        end_layer: int
        n_layers: int

        def is_first_layer(self) -> bool:
            return self.start_layer == 0

        def is_last_layer(self) -> bool:
            return self.end_layer == self.n_layers - 1

        def get_layer_count(self) -> int:
            return self.end_layer - self.start_layer + 1

        def to_dict(self) -> dict:
            return {"model_id": self.model_id, "start_layer": self.start_layer, "end_layer": self.end_layer,
                    "n_layers": self.n_layers}

        @staticmethod
        def from_dict(data: dict) -> "Shard":
            return Shard(**data)

    class InferenceEngine(ABC):  # type: ignore[no-redef]
        """exo's engine contract (v0.0.15-alpha), without exo."""

        @abstractmethod
        async def encode(self, shard: Shard, prompt: str) -> np.ndarray: ...

        @abstractmethod
        async def sample(self, x: np.ndarray) -> np.ndarray: ...

        @abstractmethod
        async def decode(self, shard: Shard, tokens: np.ndarray) -> str: ...

        @abstractmethod
        async def infer_tensor(self, request_id: str, shard: Shard, input_data: np.ndarray,
                               inference_state: Optional[dict] = None) -> tuple[np.ndarray, Optional[dict]]: ...

        @abstractmethod
        async def load_checkpoint(self, shard: Shard, path: str): ...

        async def save_checkpoint(self, shard: Shard, path: str):
            pass

        async def infer_prompt(self, request_id: str, shard: Shard, prompt: str,
                               inference_state: Optional[dict] = None) -> tuple[np.ndarray, Optional[dict]]:
            tokens = await self.encode(shard, prompt)
            return await self.infer_tensor(request_id, shard, tokens.reshape(1, -1), inference_state)

__all__ = ["EXO_AVAILABLE", "InferenceEngine", "Shard"]
