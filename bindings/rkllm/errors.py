"""Exceptions of the ``rkllm`` binding: one class per cause, each message naming the fix."""

from __future__ import annotations


class RKLLMError(Exception):
    """Base class of every error raised by the ``rkllm`` package."""


class LibraryNotFoundError(RKLLMError, FileNotFoundError):
    """No librkllmrt.so at any place looked at; ``.tried`` lists them."""

    def __init__(self, message: str, tried: list[str] | None = None) -> None:
        super().__init__(message)
        self.tried = list(tried or [])


class ABIMismatchError(RKLLMError):
    """The library is not RKLLM runtime 1.2.2/1.2.3 (other version or missing functions)."""

    def __init__(self, message: str, path: str | None = None, found_version: str | None = None,
                 missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.found_version = found_version
        self.missing = list(missing or [])


class LibraryLoadError(RKLLMError, OSError):
    """The file is not a loadable shared library for this machine, or dlopen refused it."""


class ModelLoadError(RKLLMError):
    """The model file is missing, unreadable, or rkllm_init refused it."""


class ContextOverflowError(RKLLMError):
    """The input does not fit in the model's context (max_context_len)."""

    def __init__(self, message: str, n_tokens: int | None = None,
                 max_context_len: int | None = None) -> None:
        super().__init__(message)
        self.n_tokens = n_tokens
        self.max_context_len = max_context_len


class InvalidConfigError(RKLLMError, ValueError):
    """A RuntimeConfig field is out of its allowed range; ``.field`` names it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RKLLMCallError(RKLLMError):
    """A runtime function returned non-zero; carries ``.function`` and ``.code``."""

    def __init__(self, function: str, code: int, detail: str = "") -> None:
        msg = f"{function} returned {code}"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)
        self.function = function
        self.code = code


class RKLLMRunError(RKLLMError):
    """The runtime reported RKLLM_RUN_ERROR during a run."""

    def __init__(self, message: str, n_tokens: int = 0) -> None:
        super().__init__(message)
        self.n_tokens = n_tokens


class RuntimeClosedError(RKLLMError):
    """The RKLLMRuntime was closed (its handle destroyed); create a new one."""
