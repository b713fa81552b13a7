"""Model cards: what a model id means (file, tokenizer, memory, sampling, timeouts).

Cards are TOML files shipped as package data of ``exo_rkllm_models`` (so a wheel install works),
plus user entries (``exo-rkllm models import``) in ``<models dir>/catalog/*.toml``.
Model ids are validated before they are used anywhere near a file path.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repeat_penalty", "frequency_penalty", "presence_penalty")
DELIVERY_MODES = ("stream", "cached")
USER_CATALOG_SUBDIR = "catalog"

_REQUIRED = ("id", "pretty_name", "family", "file", "tokenizer", "context_length", "memory_mb")
_KNOWN_KEYS = set(_REQUIRED) | {
    "hf_repo", "layers", "toolkit_version", "reasoning", "think_start", "think_end", "delivery",
    "max_new_tokens", "request_timeout_s", "idle_timeout_s", "sampling", "simulated", "sim_model",
    "decode_tok_s", "ttft_ms_128", "sha256", "size_bytes", "system_prompt", "model_path", "notes",
    "reasoning_budget",
}


class CatalogError(ValueError):
    """A card file is malformed; the message names the file, the key and the fix."""


class UnknownModelError(KeyError):
    """A model id that no card describes. The message lists known ids and how to see them."""

    def __init__(self, model_id: str, known: Iterable[str] = ()):
        self.model_id = model_id
        self.known = sorted(known)
        shown = ", ".join(self.known) if self.known else "(none)"
        self.message = (f"unknown model {model_id!r}; known models: {shown}. "
                        f"Run `exo-rkllm models list` to see them with their status.")
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class TokenizerUnavailableError(RuntimeError):
    """The tokenizer is neither a local directory nor in the Hugging Face cache."""


@dataclass(frozen=True)
class ModelCard:
    """One model: everything the serving layers need to load and drive it.

    ``memory_mb``/``decode_tok_s``/``ttft_ms_128``: Rockchip's RK3588 1.2.3 benchmark (w8a8, 128-token prompt);
    ``delivery``: "stream" (token by token) or "cached" (whole reply at once; never for reasoning models);
    ``request_timeout_s``: longest a whole generation may run; ``idle_timeout_s``: a request whose consumer
    stops reading for this long is ended, freeing the NPU; ``sampling``: load-time sampling (RKLLM 1.2.3 fixes
    it at rkllm_init); ``model_path``: imported entries only, the file reused in place; ``reasoning_budget``:
    default thought length in tokens, past which the closing tag is fed so an answer always follows (kept
    below ``max_new_tokens``, or the cap would end the reply mid-thought).
    """

    id: str
    pretty_name: str
    family: str
    file: str
    tokenizer: str
    context_length: int
    memory_mb: int
    hf_repo: str | None = None
    layers: int | None = None
    toolkit_version: str = "1.2.3"
    reasoning: bool = False
    think_start: str | None = None
    think_end: str | None = None
    delivery: str = "stream"
    max_new_tokens: int = 1024
    request_timeout_s: float = 300.0
    idle_timeout_s: float = 600.0
    sampling: dict[str, float] = field(default_factory=dict)
    simulated: bool = False
    sim_model: str | None = None
    decode_tok_s: float | None = None
    ttft_ms_128: float | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    system_prompt: str | None = None
    reasoning_budget: int | None = None
    model_path: str | None = None  # user entries: an absolute path reused in place
    source: str = "builtin"          # "builtin" or the user card file's path
    models_dir: str | None = None    # the models directory this card was looked up in (its files live there)

    @property
    def is_user_entry(self) -> bool:
        return self.source != "builtin"


def validate_model_id(model_id: str) -> str:
    """Return ``model_id`` if it is safe as a name and a path component, else raise ValueError."""
    if not isinstance(model_id, str) or not MODEL_ID_RE.match(model_id) or ".." in model_id:
        raise ValueError(f"invalid model id {model_id!r}: use 1-64 characters from a-z 0-9 . _ - "
                         f"starting with a letter or digit (e.g. qwen2.5-1.5b-instruct)")
    return model_id


def parse_card(data: dict[str, Any], origin: str, *, builtin: bool = False) -> ModelCard:
    """Build a card from parsed TOML, with a message naming ``origin`` for every problem.

    ``builtin`` cards come from the package; others record ``origin`` (their file) as ``source``.
    """
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise CatalogError(f"{origin}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KNOWN_KEYS))}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CatalogError(f"{origin}: missing required key(s) {', '.join(missing)}")
    try:
        validate_model_id(data["id"])
    except ValueError as exc:
        raise CatalogError(f"{origin}: {exc}") from None
    fname = str(data["file"])
    if "/" in fname or "\\" in fname or fname in ("", ".", "..") or fname.startswith("."):
        raise CatalogError(f"{origin}: file must be a plain file name (got {fname!r}); "
                           f"imported entries point at their file with model_path")
    sampling = dict(data.get("sampling", {}))
    bad = sorted(set(sampling) - set(SAMPLING_KEYS))
    if bad:
        raise CatalogError(f"{origin}: unknown sampling key(s) {', '.join(bad)}; allowed: {', '.join(SAMPLING_KEYS)}")
    delivery = data.get("delivery", "stream")
    if delivery not in DELIVERY_MODES:
        raise CatalogError(f"{origin}: delivery must be one of {DELIVERY_MODES}, not {delivery!r}")
    reasoning = bool(data.get("reasoning", False))
    if reasoning and delivery != "stream":
        raise CatalogError(f"{origin}: reasoning models always stream (a cached reply hides minutes of thinking); "
                           f"set delivery = \"stream\"")
    if reasoning and not (data.get("think_start") and data.get("think_end")):
        raise CatalogError(f"{origin}: reasoning = true needs think_start and think_end")
    if bool(data.get("simulated", False)) != bool(data.get("sim_model")):
        raise CatalogError(f"{origin}: simulated = true and sim_model go together")
    budget = data.get("reasoning_budget")
    if budget is not None:
        if not reasoning:
            raise CatalogError(f"{origin}: reasoning_budget only applies to reasoning = true models")
        cap = data.get("max_new_tokens", 1024)
        if not isinstance(budget, int) or not 0 < budget < cap:
            raise CatalogError(f"{origin}: reasoning_budget must be a positive integer below max_new_tokens "
                               f"({cap}), so an answer follows the thought; got {budget!r}")
    for key in ("context_length", "memory_mb", "max_new_tokens"):
        if key in data and (not isinstance(data[key], int) or data[key] <= 0):
            raise CatalogError(f"{origin}: {key} must be a positive integer, not {data[key]!r}")
    kwargs = {k: v for k, v in data.items() if k != "notes"}
    kwargs["sampling"] = sampling
    tok = str(data["tokenizer"])
    if bool(data.get("simulated", False)) != tok.startswith("sim:"):
        raise CatalogError(f"{origin}: simulated cards (and only they) use tokenizer = \"sim:<name>\"")
    return ModelCard(source="builtin" if builtin else origin, **kwargs)


@functools.lru_cache(maxsize=1)
def _builtin_cards() -> tuple[ModelCard, ...]:
    """Shipped cards, parsed once per process (they cannot change under a running install)."""
    seen: dict[str, ModelCard] = {}
    for name, text in _builtin_card_texts():
        card = _parse_text(text, name, builtin=True)
        if card.id in seen:
            raise CatalogError(f"{name}: duplicate model id {card.id!r}")
        seen[card.id] = card
    return tuple(seen.values())


def _builtin_card_texts() -> list[tuple[str, str]]:
    """(name, text) of every card shipped in package ``exo_rkllm_models`` (works from a wheel)."""
    from importlib import resources

    root = resources.files("exo_rkllm_models")
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and entry.is_file():
            out.append((f"exo_rkllm_models/{entry.name}", entry.read_text(encoding="utf-8")))
    return out


def default_models_dir() -> Path:
    """$EXO_RKLLM_MODELS_DIR, else $XDG_DATA_HOME/exo-rkllm/models (~/.local/share/...)."""
    env = os.environ.get("EXO_RKLLM_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "exo-rkllm" / "models"


def load_catalog(models_dir: str | os.PathLike[str] | None = None, *,
                 include_user: bool = True) -> dict[str, ModelCard]:
    """All cards by id: the shipped ones, then user entries from ``<models_dir>/catalog``.

    A user entry may not redefine a shipped id (that would silently change what an id means).
    """
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    cards: dict[str, ModelCard] = {c.id: dataclasses.replace(c, models_dir=str(root)) for c in _builtin_cards()}
    if include_user:
        user_dir = root / USER_CATALOG_SUBDIR
        if user_dir.is_dir():
            for path in sorted(user_dir.glob("*.toml")):
                card = dataclasses.replace(_parse_text(path.read_text(encoding="utf-8"), str(path)),
                                           models_dir=str(root))
                if card.id in cards:
                    raise CatalogError(f"{path}: model id {card.id!r} is already defined by "
                                       f"{cards[card.id].source}; rename the entry or delete {path}")
                cards[card.id] = card
    return cards


def _parse_text(text: str, origin: str, *, builtin: bool = False) -> ModelCard:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{origin}: not valid TOML ({exc})") from None
    return parse_card(data, origin, builtin=builtin)


def get_card(model_id: str, models_dir: str | os.PathLike[str] | None = None) -> ModelCard:
    """The card for ``model_id``; UnknownModelError (a KeyError) lists the known ids."""
    cards = load_catalog(models_dir)
    if not isinstance(model_id, str) or model_id not in cards:
        raise UnknownModelError(str(model_id), cards)
    return cards[model_id]


def tokenizer_location(card: ModelCard) -> Path | str:
    """A local directory (Path) holding the tokenizer, or an HF repo id (str) to look up in the cache."""
    tok = card.tokenizer
    if card.simulated:
        from exo_rkllm.sim import sim_tokenizer_dir  # the simulator package's tokenizers/<name>/

        return Path(sim_tokenizer_dir(tok.split(":", 1)[1]))
    if tok.startswith(("/", "./", "~")):
        return Path(tok).expanduser()
    return tok


def load_tokenizer(card: ModelCard):
    """The card's transformers tokenizer, never downloaded at serve time.

    Local directories load directly; repo ids load from the Hugging Face cache with
    ``local_files_only=True``. Missing -> TokenizerUnavailableError naming `exo-rkllm models pull ID`.
    """
    loc = tokenizer_location(card)
    if isinstance(loc, Path) and not loc.is_dir():
        raise TokenizerUnavailableError(
            f"tokenizer for {card.id!r} not found: directory {loc} does not exist; "
            f"fix the card's tokenizer path or run `exo-rkllm models pull {card.id}`")
    # Only tokenizers are used: transformers' "PyTorch was not found" advice is noise here.
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers import AutoTokenizer

    try:
        if isinstance(loc, Path):
            return AutoTokenizer.from_pretrained(str(loc), local_files_only=True)
        return AutoTokenizer.from_pretrained(loc, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TokenizerUnavailableError(
            f"tokenizer {loc} for {card.id!r} is not available locally ({str(exc).splitlines()[0]}); "
            f"run `exo-rkllm models pull {card.id}` (it caches the tokenizer) on a machine with network") from None
