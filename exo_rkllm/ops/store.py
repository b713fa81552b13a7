"""The models directory: where model files live, pulling them, verifying them.

Layout (``<root>`` = --models-dir, $EXO_RKLLM_MODELS_DIR or ~/.local/share/exo-rkllm/models)::

    <root>/<model id>/<card.file>             a complete, checked model file
    <root>/<model id>/.<card.file>.record.json  size and sha256 recorded when the pull finished
    <root>/<model id>/.partial/               downloads in progress (resumable; never loaded)
    <root>/catalog/<id>.toml                  user entries (``exo-rkllm models import``)

A file only gets its final name after the download finished and its checksum matched, so
nothing half-written ever looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from exo_rkllm.catalog import (USER_CATALOG_SUBDIR, ModelCard, default_models_dir, load_catalog,
                               tokenizer_location, validate_model_id)
from exo_rkllm.ops import memory

SIM_MAGIC = b"RKLLM-SIM 1"
PARTIAL_DIR = ".partial"
# Files a transformers tokenizer may need; pulled into the Hugging Face cache.
TOKENIZER_PATTERNS = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                      "merges.txt", "tokenizer.model", "added_tokens.json", "generation_config.json",
                      "config.json"]
# Headers that are certainly not a converted RKLLM model (Rockchip does not document its own magic).
_NOT_RKLLM = [
    (b"version https://git-lfs", "a Git LFS pointer, not the model (download it with `exo-rkllm models pull`)"),
    (b"GGUF", "a llama.cpp GGUF file; RKLLM needs a model converted with rkllm-toolkit 1.2.3"),
    (b"<!DOCTYPE", "an HTML page (a failed download), not a model"),
    (b"<html", "an HTML page (a failed download), not a model"),
    (b"PK\x03\x04", "a zip archive; unpack it first"),
    (b"RKNN", "an RKNN (vision) model, not an RKLLM language model"),
]


class StoreError(RuntimeError):
    """A models-directory operation failed; the message names the cause and the fix."""


class ChecksumError(StoreError):
    pass


@dataclass(frozen=True)
class Check:
    """One verification line: status is PASS, WARN, FAIL or SKIP."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _sha256(path: Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ModelStore:
    """One models directory and the catalog it extends."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        # Without an explicit root, a card's files are looked up where the card itself was found
        # (``card.models_dir``: e.g. `serve --models-dir X` loaded it from X).
        self._explicit = root is not None
        self.root = Path(root).expanduser() if root is not None else default_models_dir()

    # -- where things are -------------------------------------------------------------------
    @property
    def catalog_dir(self) -> Path:
        return self.root / USER_CATALOG_SUBDIR

    def catalog(self) -> dict[str, ModelCard]:
        return load_catalog(self.root)

    def model_dir(self, card: ModelCard) -> Path:
        root = self.root if self._explicit or not card.models_dir else Path(card.models_dir)
        return root / validate_model_id(card.id)

    def model_file(self, card: ModelCard) -> Path:
        """The file the runtime loads: the simulator's, an imported one in place, or under root."""
        if card.simulated:
            try:
                from exo_rkllm.sim import sim_model_path
            except ImportError as exc:
                raise StoreError(f"simulated model {card.id!r} needs the simulator package (exo_rkllm.sim): "
                                 f"{exc}; reinstall exo-rkllm") from None
            return Path(sim_model_path(card.sim_model or ""))
        if card.model_path:
            return Path(card.model_path)
        return self.model_dir(card) / card.file

    def _record_path(self, card: ModelCard) -> Path:
        return self.model_dir(card) / f".{card.file}.record.json"

    def is_installed(self, card: ModelCard) -> bool:
        try:
            return self.model_file(card).is_file()
        except StoreError:
            return False

    def ensure_writable(self, path: Path | None = None) -> Path:
        """Create ``path`` (default: root) or raise a StoreError saying why and what to do."""
        path = path or self.root
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreError(f"models directory {path} is not writable ({exc.strerror or exc}); choose another "
                             f"with --models-dir or EXO_RKLLM_MODELS_DIR, or fix its ownership") from None
        return path

    # -- pull ---------------------------------------------------------------------------------
    def pull(self, card: ModelCard, *, download: Callable[..., str] | None = None,
             snapshot: Callable[..., str] | None = None,
             sha256_lookup: Callable[[ModelCard], str | None] | None = None,
             log: Callable[[str], None] = print) -> Path:
        """Download the card's model file (resumable) and tokenizer; check the sha256; then publish.

        ``download``/``snapshot`` default to huggingface_hub's hf_hub_download/snapshot_download
        (progress bars, resume of .incomplete files); tests pass local fakes.
        """
        if card.simulated:
            path = self.model_file(card)
            log(f"{card.id} is simulated: its model file ships with the simulator ({path}); nothing to download")
            return path
        if card.model_path:
            raise StoreError(f"{card.id} is an imported entry whose files are already in place "
                             f"({card.model_path}); nothing to pull")
        if not card.hf_repo:
            raise StoreError(f"{card.id} has no hf_repo in its card; convert the model with rkllm-toolkit 1.2.3 "
                             f"and bring it in with `exo-rkllm models import`")
        target_dir = self.ensure_writable(self.model_dir(card))
        final = target_dir / card.file
        record = self._record_path(card)
        if final.is_file() and record.is_file():
            try:
                rec = json.loads(record.read_text())
            except (OSError, ValueError):
                rec = {}
            if rec.get("size") == final.stat().st_size:
                log(f"{card.id}: {final} already present and complete")
                self._pull_tokenizer(card, snapshot, log)
                return final
        staging = target_dir / PARTIAL_DIR
        staging.mkdir(exist_ok=True)
        if download is None:
            from huggingface_hub import hf_hub_download as download
        log(f"{card.id}: downloading {card.file} from huggingface.co/{card.hf_repo} (resumes if interrupted)")
        try:
            got = Path(download(repo_id=card.hf_repo, filename=card.file, local_dir=str(staging)))
        except KeyboardInterrupt:
            raise StoreError(f"{card.id}: pull interrupted; the partial download stays in {staging} and "
                             f"`exo-rkllm models pull {card.id}` resumes it") from None
        except Exception as exc:  # network, 404, auth: huggingface_hub raises many types
            raise StoreError(f"{card.id}: download of {card.file} from {card.hf_repo} failed: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
                             f"Check the network and the repo; run the pull again to resume") from None
        if not got.is_file():
            raise StoreError(f"{card.id}: the download reported {got} but no such file exists; run the pull again")
        if got.is_symlink():  # older huggingface_hub links local_dir files into its cache: keep a real copy
            real_copy = got.with_name(got.name + ".copy")
            shutil.copyfile(got.resolve(), real_copy)
            got.unlink()
            os.replace(real_copy, got)
        expected = card.sha256
        if expected is None:
            lookup = sha256_lookup if sha256_lookup is not None else _hub_sha256
            expected = lookup(card)
        log(f"{card.id}: computing sha256 of {got.stat().st_size} bytes")
        actual = _sha256(got)
        if expected and actual.lower() != expected.lower():
            got.unlink()
            raise ChecksumError(f"{card.id}: checksum mismatch for {card.file} (expected {expected}, got {actual}); "
                                f"the corrupt download was deleted, run `exo-rkllm models pull {card.id}` again")
        if not expected:
            log(f"WARN {card.id}: no published sha256 for {card.file}; recorded {actual} for later verification")
        os.replace(got, final)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"size": final.stat().st_size, "sha256": actual,
                                   "checked_against": expected or None, "hf_repo": card.hf_repo}))
        os.replace(tmp, record)
        shutil.rmtree(staging, ignore_errors=True)
        log(f"{card.id}: {final} complete (sha256 {actual[:16]}…)")
        self._pull_tokenizer(card, snapshot, log)
        return final

    def _pull_tokenizer(self, card: ModelCard, snapshot: Callable[..., str] | None,
                        log: Callable[[str], None]) -> None:
        loc = tokenizer_location(card)
        if isinstance(loc, Path):
            return
        if snapshot is None:
            from huggingface_hub import snapshot_download as snapshot
        log(f"{card.id}: caching tokenizer {loc}")
        try:
            snapshot(repo_id=loc, allow_patterns=TOKENIZER_PATTERNS)
        except Exception as exc:
            raise StoreError(f"{card.id}: could not cache tokenizer {loc}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}; run the pull again with network") from None

    # -- verify -------------------------------------------------------------------------------
    def verify(self, card: ModelCard, *, checksum: bool = False,
               meminfo: str | os.PathLike[str] = memory.MEMINFO) -> list[Check]:
        """File present, header, size, tokenizer present, fits this board's memory."""
        checks: list[Check] = []
        pull_fix = (f"run `exo-rkllm models pull {card.id}`" if not card.model_path
                    else f"re-import the folder (`exo-rkllm models import`) or fix {card.model_path}")
        try:
            path = self.model_file(card)
        except StoreError as exc:
            return [Check("file", "FAIL", str(exc), "reinstall exo-rkllm")]
        if not path.is_file():
            checks.append(Check("file", "FAIL", f"{path} is missing", pull_fix))
        else:
            size = path.stat().st_size
            checks.append(Check("file", "PASS", f"{path} ({size / 1e6:.1f} MB)"))
            checks.append(self._check_header(card, path))
            checks.append(self._check_size(card, path, size, pull_fix))
            if checksum:
                checks.append(self._check_checksum(card, path, pull_fix))
        checks.append(self._check_tokenizer(card))
        fit = memory.check_fit(card, meminfo=meminfo)
        checks.append(Check("memory", "PASS" if fit.ok and fit.available_mb is not None else
                            ("WARN" if fit.ok else "FAIL"), fit.message,
                            "" if fit.ok else "free memory or use a board with more RAM"))
        return checks

    def _check_header(self, card: ModelCard, path: Path) -> Check:
        with open(path, "rb") as f:
            head = f.read(64)
        if not head:
            return Check("format", "FAIL", f"{path} is empty", f"delete it and pull again")
        if card.simulated:
            first = head.split(b"\n", 1)[0].rstrip(b"\r")
            if first == SIM_MAGIC:
                return Check("format", "PASS", "simulated model file (RKLLM-SIM 1)")
            return Check("format", "FAIL", f"{path} does not start with {SIM_MAGIC.decode()!r}", "reinstall exo-rkllm")
        if head.startswith(b"RKLLM-SIM"):
            return Check("format", "FAIL", f"{path} is a simulator model file; the real runtime rejects it",
                         "point the card at a model converted with rkllm-toolkit 1.2.3")
        for magic, what in _NOT_RKLLM:
            if head[:len(magic)].lower() == magic.lower():
                return Check("format", "FAIL", f"{path} is {what}", "replace it with the converted .rkllm file")
        return Check("format", "PASS", "binary model file (RKLLM's header is undocumented: the runtime "
                     "itself checks its magic at load)")

    def _check_size(self, card: ModelCard, path: Path, size: int, fix: str) -> Check:
        record = self._record_path(card)
        if not card.model_path and record.is_file():
            try:
                want = int(json.loads(record.read_text())["size"])
            except (OSError, ValueError, KeyError, TypeError):
                want = None
            if want is not None:
                if size != want:
                    return Check("size", "FAIL", f"{size} bytes, but the pull recorded {want}: truncated or replaced",
                                 fix)
                return Check("size", "PASS", f"{size} bytes, as recorded at pull")
        if card.size_bytes:
            lo, hi = 0.9 * card.size_bytes, 1.1 * card.size_bytes
            if size < lo:
                return Check("size", "FAIL", f"{size} bytes, card expects about {card.size_bytes}: truncated", fix)
            if size > hi:
                return Check("size", "WARN", f"{size} bytes, card expects about {card.size_bytes}")
            return Check("size", "PASS", f"{size} bytes (card: about {card.size_bytes})")
        if card.simulated:
            return Check("size", "PASS", f"{size} bytes (simulated)")
        # A w8a8 file holds roughly one byte per parameter; the card's memory figure adds KV cache and buffers.
        floor = card.memory_mb * 1e6 * 0.4
        if size < floor:
            return Check("size", "FAIL", f"{size / 1e6:.1f} MB is far below what a model needing "
                         f"{card.memory_mb} MB must weigh (>= {floor / 1e6:.0f} MB): truncated?", fix)
        if size > card.memory_mb * 1e6 * 3:
            return Check("size", "WARN", f"{size / 1e6:.1f} MB is much larger than the card's {card.memory_mb} MB: "
                         f"a different model?")
        return Check("size", "PASS", f"{size / 1e6:.1f} MB, plausible for {card.memory_mb} MB of memory")

    def _check_checksum(self, card: ModelCard, path: Path, fix: str) -> Check:
        want = card.sha256
        record = self._record_path(card)
        if want is None and record.is_file():
            try:
                want = json.loads(record.read_text()).get("sha256")
            except (OSError, ValueError):
                want = None
        if not want:
            return Check("sha256", "SKIP", "no checksum known for this file")
        got = _sha256(path)
        if got != want.lower():
            return Check("sha256", "FAIL", f"sha256 {got} != expected {want}", fix)
        return Check("sha256", "PASS", f"sha256 {got[:16]}… matches")

    def _check_tokenizer(self, card: ModelCard) -> Check:
        try:
            loc = tokenizer_location(card)
        except Exception as exc:  # simulator package missing, bad path
            return Check("tokenizer", "FAIL", f"{type(exc).__name__}: {exc}", "reinstall exo-rkllm")
        if isinstance(loc, Path):
            if (loc / "tokenizer.json").is_file() or (loc / "tokenizer_config.json").is_file():
                return Check("tokenizer", "PASS", f"{loc}")
            return Check("tokenizer", "FAIL", f"no tokenizer.json or tokenizer_config.json in {loc}",
                         "point the card's tokenizer at a directory holding the model's tokenizer files")
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(loc, "tokenizer_config.json")
        if isinstance(hit, str):
            return Check("tokenizer", "PASS", f"{loc} (Hugging Face cache)")
        return Check("tokenizer", "FAIL", f"tokenizer {loc} is not in the Hugging Face cache",
                     f"run `exo-rkllm models pull {card.id}` (it caches the tokenizer)")


def _hub_sha256(card: ModelCard) -> str | None:
    """The LFS sha256 the Hub publishes for the card's file, or None when it cannot be asked."""
    try:
        from huggingface_hub import HfApi

        for info in HfApi().get_paths_info(card.hf_repo, [card.file]):
            lfs = getattr(info, "lfs", None)
            if lfs is not None and getattr(lfs, "sha256", None):
                return lfs.sha256
    except Exception:
        return None
    return None
