"""The serving core: exo-free. Loads models into runtime worker processes, queues requests FIFO per
model, delivers generated tokens per request, and reuses the KV cache across turns.

Both the HTTP server (`exo_rkllm.server`) and the exo adapter (`exo_rkllm.exo_adapter`) sit on it.
"""

from exo_rkllm.core.core import RuntimeSpec, ServingCore, model_file, worker_config
from exo_rkllm.core.errors import (ContextOverflowError, CoreError, InvalidRequestError, QueueFullError,
                                   RequestTimeoutError, RuntimeUnavailableError, SamplingMismatchError,
                                   WorkerCrashedError)
from exo_rkllm.core.service import ModelService
from exo_rkllm.core.stream import FinishInfo, GenerationRequest, RequestStream, TokenPiece

__all__ = [
    "ContextOverflowError", "CoreError", "FinishInfo", "GenerationRequest", "InvalidRequestError", "ModelService",
    "QueueFullError", "RequestStream", "RequestTimeoutError", "RuntimeSpec", "RuntimeUnavailableError",
    "SamplingMismatchError", "ServingCore", "TokenPiece", "WorkerCrashedError", "model_file",
    "worker_config",
]
