"""Import rkllama model folders as user catalog entries, reusing their files in place.

rkllama keeps ``<models>/<name>/Modelfile`` next to the ``.rkllm`` file. A Modelfile is
``KEY=value`` lines (values optionally double-quoted with ``\\n``, ``\\"`` escapes; ``#`` comments).
FROM and HUGGINGFACE_PATH are required; the sampling keys map onto the card; keys exo-rkllm has no
use for are reported, and keys nobody knows are an error (a typo must not silently change sampling).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exo_rkllm.catalog import CatalogError, ModelCard, load_catalog, parse_card, validate_model_id
from exo_rkllm.ops.store import ModelStore, StoreError

REQUIRED = ("FROM", "HUGGINGFACE_PATH")
SAMPLING_MAP = {"TEMPERATURE": "temperature", "TOP_K": "top_k", "TOP_P": "top_p",
                "REPEAT_PENALTY": "repeat_penalty", "FREQUENCY_PENALTY": "frequency_penalty",
                "PRESENCE_PENALTY": "presence_penalty"}
MAPPED = set(REQUIRED) | set(SAMPLING_MAP) | {"SYSTEM", "NUM_CTX", "MAX_NEW_TOKENS", "ENABLE_THINKING", "TOKENIZER"}
# rkllama keys with no exo-rkllm equivalent: accepted, reported as ignored (why in the value).
IGNORED = {
    "TEMPLATE": "exo-rkllm applies the tokenizer's own chat template",
    "LICENSE": "informational only",
    "MIROSTAT": "mirostat sampling is not exposed (RKLLM default: off)",
    "MIROSTAT_TAU": "mirostat sampling is not exposed",
    "MIROSTAT_ETA": "mirostat sampling is not exposed",
}
VISION = {"VISION_ENCODER", "IMAGE_WIDTH", "IMAGE_HEIGHT", "N_IMAGE_TOKENS", "IMG_START", "IMG_END", "IMG_CONTENT"}
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModelfileError(ValueError):
    """A Modelfile that cannot become a catalog entry; the message names the file, key and fix."""


@dataclass
class ImportResult:
    card: ModelCard
    card_path: Path
    notes: list[str] = field(default_factory=list)


def parse_modelfile(text: str, origin: str = "Modelfile") -> dict[str, Any]:
    """KEY=value lines -> {KEY: str|int|float|bool}; a line without '=' is an error naming its number."""
    out: dict[str, Any] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip().upper(), value.strip()
        if not sep or not _KEY_RE.match(key):
            raise ModelfileError(f"{origin}:{n}: expected KEY=value, got {raw.strip()!r}")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            out[key] = value[1:-1].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        elif value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            try:
                out[key] = float(value) if "." in value or "e" in value.lower() else int(value)
            except ValueError:
                out[key] = value
    return out


def _number(values: dict[str, Any], key: str, origin: str, kind: type) -> Any:
    v = values[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
        raise ModelfileError(f"{origin}: {key} must be {'an integer' if kind is int else 'a number'}, not {v!r}")
    return kind(v)


def modelfile_to_card_data(folder: Path, values: dict[str, Any], *, model_id: str,
                           memory_mb: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """Card fields (catalog TOML keys) from parsed Modelfile values, plus notes for the user."""
    origin = str(folder / "Modelfile")
    notes: list[str] = []
    missing = [k for k in REQUIRED if not values.get(k)]
    if missing:
        raise ModelfileError(f"{origin}: missing {', '.join(missing)}; rkllama Modelfiles need FROM=\"<file>.rkllm\" "
                             f"and HUGGINGFACE_PATH=\"<org>/<repo>\" (the tokenizer source)")
    vision = sorted(set(values) & VISION)
    if vision:
        raise ModelfileError(f"{origin}: {', '.join(vision)}: multimodal (vision) models are not supported by "
                             f"exo-rkllm; import a text-only model")
    unknown = sorted(set(values) - MAPPED - set(IGNORED))
    if unknown:
        raise ModelfileError(f"{origin}: unknown key(s) {', '.join(unknown)}; known keys: "
                             f"{', '.join(sorted(MAPPED | set(IGNORED)))}. Fix the spelling or remove the line")
    for key in sorted(set(values) & set(IGNORED)):
        notes.append(f"ignored {key}: {IGNORED[key]}")

    model_file = (folder / str(values["FROM"])).resolve()
    if not model_file.is_file():
        raise ModelfileError(f"{origin}: FROM points at {model_file}, which does not exist; fix FROM or put "
                             f"the .rkllm file there")
    tok = values.get("TOKENIZER") or values["HUGGINGFACE_PATH"]
    tok = str(tok)
    local_tok = (folder / tok) if not os.path.isabs(tok) else Path(tok)
    if "TOKENIZER" in values or local_tok.is_dir():
        if not local_tok.is_dir():
            raise ModelfileError(f"{origin}: TOKENIZER points at {local_tok}, which is not a directory")
        tok = str(local_tok.resolve())
    if memory_mb is None:
        # No Rockchip figure for an arbitrary model: the weights plus ~10% for KV cache and buffers.
        memory_mb = max(1, int(model_file.stat().st_size / 1e6 * 1.1))
        notes.append(f"memory_mb estimated as {memory_mb} from the file size (override with --memory-mb)")
    data: dict[str, Any] = {
        "id": model_id,
        "pretty_name": f"{folder.name} (imported from rkllama)",
        "family": "imported",
        "file": model_file.name,
        "model_path": str(model_file),
        "hf_repo": str(values["HUGGINGFACE_PATH"]),
        "tokenizer": tok,
        "context_length": _number(values, "NUM_CTX", origin, int) if "NUM_CTX" in values else 4096,
        "memory_mb": memory_mb,
        "toolkit_version": "1.2.3",
        "delivery": "stream",
        "max_new_tokens": _number(values, "MAX_NEW_TOKENS", origin, int) if "MAX_NEW_TOKENS" in values else 1024,
    }
    if values.get("ENABLE_THINKING") is True:
        data.update(reasoning=True, think_start="<think>", think_end="</think>")
    elif "ENABLE_THINKING" in values and not isinstance(values["ENABLE_THINKING"], bool):
        raise ModelfileError(f"{origin}: ENABLE_THINKING must be true or false, not {values['ENABLE_THINKING']!r}")
    if values.get("SYSTEM"):
        data["system_prompt"] = str(values["SYSTEM"])
    sampling = {}
    for key, name in SAMPLING_MAP.items():
        if key in values:
            sampling[name] = _number(values, key, origin, int if key == "TOP_K" else float)
    data["sampling"] = sampling
    notes.append(f"model file reused in place: {model_file}")
    return data, notes


def to_toml(data: dict[str, Any]) -> str:
    """A flat card (plus its [sampling] table) as TOML; strings via JSON escapes, which TOML accepts."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return json.dumps(str(v), ensure_ascii=False)

    lines = ["# Imported by `exo-rkllm models import`: edit freely, `exo-rkllm models verify` checks it."]
    lines += [f"{k} = {value(v)}" for k, v in data.items() if k != "sampling"]
    if data.get("sampling"):
        lines += ["", "[sampling]"] + [f"{k} = {value(v)}" for k, v in data["sampling"].items()]
    return "\n".join(lines) + "\n"


def find_model_folders(path: Path) -> list[Path]:
    """``path`` itself if it holds a Modelfile, else its subfolders that do (an rkllama models root)."""
    if (path / "Modelfile").is_file():
        return [path]
    if not path.is_dir():
        raise ModelfileError(f"{path} is not a directory; give an rkllama model folder (holding a Modelfile) "
                             f"or rkllama's models directory")
    found = sorted(p for p in path.iterdir() if (p / "Modelfile").is_file())
    if not found:
        raise ModelfileError(f"no Modelfile in {path} or its subfolders; is this an rkllama models directory?")
    return found


def import_folder(store: ModelStore, folder: str | os.PathLike[str], *, model_id: str | None = None,
                  memory_mb: int | None = None) -> ImportResult:
    """Turn one rkllama folder into ``<models dir>/catalog/<id>.toml``; validated before it is written."""
    folder = Path(folder).expanduser().resolve()
    modelfile = folder / "Modelfile"
    if not modelfile.is_file():
        raise ModelfileError(f"no Modelfile in {folder}")
    mid = model_id or re.sub(r"[^a-z0-9._-]+", "-", folder.name.lower()).strip("-._")
    try:
        validate_model_id(mid)
    except ValueError as exc:
        raise ModelfileError(f"{exc}; pass --id to choose one") from None
    values = parse_modelfile(modelfile.read_text(encoding="utf-8"), str(modelfile))
    data, notes = modelfile_to_card_data(folder, values, model_id=mid, memory_mb=memory_mb)
    existing = load_catalog(store.root)
    if mid in existing and existing[mid].source != str(store.catalog_dir / f"{mid}.toml"):
        raise ModelfileError(f"model id {mid!r} is already taken ({existing[mid].source}); pass --id to choose another")
    target = store.catalog_dir / f"{mid}.toml"
    text = to_toml(data)
    import sys
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        card = parse_card(tomllib.loads(text), str(target))
    except CatalogError as exc:
        raise ModelfileError(f"{modelfile}: {exc}") from None
    store.ensure_writable(store.catalog_dir)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return ImportResult(card, target, notes)


__all__ = ["ImportResult", "ModelfileError", "StoreError", "find_model_folders", "import_folder",
           "parse_modelfile", "to_toml"]
