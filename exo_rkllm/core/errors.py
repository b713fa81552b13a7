"""Errors the serving core raises to its callers. Each names the cause and the fix."""

from __future__ import annotations


class CoreError(Exception):
    """Base of serving-core errors: ``message`` says what went wrong, ``fix`` what to do about it."""

    status = 500  # HTTP status the API layer should map this to

    def __init__(self, message: str, fix: str = "") -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} {fix}".strip())


class InvalidRequestError(CoreError):
    """The request itself is malformed (for example an empty prompt)."""

    status = 400


class QueueFullError(CoreError):
    """The model's FIFO queue is at its bound: the caller should retry later or elsewhere."""

    status = 503

    def __init__(self, model: str, depth: int, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"Model '{model}' already has {depth} requests waiting for the NPU (queue depth {depth}).",
            f"Retry after about {retry_after_s:.0f} s, send the request to another board, "
            "or raise --queue-depth.",
        )


class ContextOverflowError(CoreError):
    """The prompt cannot fit in the model's context window."""

    status = 400

    def __init__(self, model: str, prompt_tokens: int, context: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.context = context
        super().__init__(
            f"The prompt is {prompt_tokens} tokens but model '{model}' has a context of {context} tokens.",
            "Shorten the conversation (drop earlier turns) or use a model converted with a longer context.",
        )


class WorkerCrashedError(CoreError):
    """The runtime worker process died while serving the request (segfault in the runtime, OOM kill)."""

    status = 500


class RuntimeUnavailableError(CoreError):
    """No usable RKLLM runtime, or the model could not be loaded into it."""

    status = 503


class SamplingMismatchError(CoreError):
    """RKLLM 1.2.3 fixes sampling at init: the request asked for values the loaded handle cannot serve."""

    status = 400

    def __init__(self, model: str, requested: dict, loaded: dict) -> None:
        self.requested = requested
        self.loaded = loaded
        asked = ", ".join(f"{k}={v}" for k, v in requested.items())
        have = ", ".join(f"{k}={loaded.get(k)}" for k in requested)
        super().__init__(
            f"Model '{model}' is loaded with {have}; this request asks for {asked}. RKLLM runtime 1.2.3 fixes "
            "sampling when the model is loaded, so it cannot change per request.",
            "Omit these parameters (or send the loaded values), start the node with matching --temperature/--top-p, "
            "or start it with --sampling-policy reload to reload the model with the requested values.",
        )


class RequestTimeoutError(CoreError):
    """The request outlived its timeout (queue wait included)."""

    status = 504
