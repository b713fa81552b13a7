"""The models directory: pull (with a local stand-in for the Hub download), verify, path, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from exo_rkllm.catalog import ModelCard, get_card
from exo_rkllm.ops.store import ChecksumError, ModelStore, StoreError

from .helpers import run_cmd, run_cmd_subprocess

PAYLOAD = b"\x7fRKLLMfake" + bytes(range(256)) * 4096   # ~1 MB of model bytes made by the test


def small_card(**over) -> ModelCard:
    base = dict(id="tiny", pretty_name="Tiny", family="test", file="tiny.rkllm", tokenizer="org/tiny-tok",
                context_length=512, memory_mb=1, hf_repo="org/tiny-rkllm")
    base.update(over)
    return ModelCard(**base)


class FakeHub:
    """Stands in for hf_hub_download/snapshot_download: writes into local_dir the way the Hub client does."""

    def __init__(self, payload=PAYLOAD, fail_after=None):
        self.payload, self.fail_after, self.calls, self.snapshots = payload, fail_after, [], []

    def download(self, *, repo_id, filename, local_dir):
        self.calls.append((repo_id, filename))
        target = Path(local_dir) / filename
        if self.fail_after is not None:
            (Path(local_dir) / (filename + ".incomplete")).write_bytes(self.payload[: self.fail_after])
            raise ConnectionError("connection reset by peer")
        target.write_bytes(self.payload)
        return str(target)

    def snapshot(self, *, repo_id, allow_patterns):
        self.snapshots.append(repo_id)
        return "/nonexistent"


def test_pull_publishes_the_file_only_after_the_checksum(tmp_path):
    store, hub, card = ModelStore(tmp_path / "m"), FakeHub(), small_card()
    logs = []
    path = store.pull(card, download=hub.download, snapshot=hub.snapshot,
                      sha256_lookup=lambda c: hashlib.sha256(PAYLOAD).hexdigest(), log=logs.append)
    assert path == tmp_path / "m" / "tiny" / "tiny.rkllm" and path.read_bytes() == PAYLOAD
    assert hub.calls == [("org/tiny-rkllm", "tiny.rkllm")] and hub.snapshots == ["org/tiny-tok"]
    assert not (tmp_path / "m" / "tiny" / ".partial").exists()
    rec = json.loads((tmp_path / "m" / "tiny" / ".tiny.rkllm.record.json").read_text())
    assert rec["size"] == len(PAYLOAD) and rec["checked_against"] == hashlib.sha256(PAYLOAD).hexdigest()
    # Second pull: already complete, no download.
    store.pull(card, download=hub.download, snapshot=hub.snapshot, sha256_lookup=lambda c: None, log=logs.append)
    assert len(hub.calls) == 1


def test_checksum_mismatch_deletes_the_download(tmp_path):
    store, hub = ModelStore(tmp_path), FakeHub()
    card = small_card(sha256="0" * 64)
    with pytest.raises(ChecksumError, match="checksum mismatch") as info:
        store.pull(card, download=hub.download, snapshot=hub.snapshot, log=lambda m: None)
    assert "pull tiny" in str(info.value)
    assert not (tmp_path / "tiny" / "tiny.rkllm").exists()
    assert not list((tmp_path / "tiny").rglob("tiny.rkllm"))


def test_interrupted_pull_leaves_nothing_that_looks_complete(tmp_path):
    store, hub, card = ModelStore(tmp_path), FakeHub(fail_after=1000), small_card()
    with pytest.raises(StoreError, match="run the pull again to resume"):
        store.pull(card, download=hub.download, snapshot=hub.snapshot, log=lambda m: None)
    assert not (tmp_path / "tiny" / "tiny.rkllm").exists()
    assert not store.is_installed(card)
    checks = {c.name: c for c in store.verify(card)}
    assert checks["file"].status == "FAIL" and "models pull tiny" in checks["file"].fix


def test_verify_catches_truncation_after_pull(tmp_path):
    store, hub, card = ModelStore(tmp_path), FakeHub(), small_card()
    path = store.pull(card, download=hub.download, snapshot=hub.snapshot, sha256_lookup=lambda c: None,
                      log=lambda m: None)
    assert {c.name: c.status for c in store.verify(card, checksum=True)}["sha256"] == "PASS"
    with open(path, "r+b") as f:
        f.truncate(len(PAYLOAD) // 2)
    checks = {c.name: c for c in store.verify(card, checksum=True)}
    assert checks["size"].status == "FAIL" and "truncated" in checks["size"].detail
    assert checks["sha256"].status == "FAIL"


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"RKLLM-SIM 1\nname: chat\n", "simulator"),
    (b"GGUF\x03\x00\x00\x00", "GGUF"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "LFS"),
    (b"<!DOCTYPE html><html>", "HTML"),
])
def test_verify_rejects_files_that_are_not_models(tmp_path, content, words):
    card = small_card(memory_mb=1)
    store = ModelStore(tmp_path)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny.rkllm").write_bytes(content)
    checks = {c.name: c for c in store.verify(card)}
    assert checks["format"].status == "FAIL" and words in checks["format"].detail


def test_verify_size_plausibility_against_the_card(tmp_path):
    card = small_card(memory_mb=1659)   # a 1.5B model cannot weigh 1 MB
    store = ModelStore(tmp_path)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny.rkllm").write_bytes(PAYLOAD)
    checks = {c.name: c for c in store.verify(card)}
    assert checks["format"].status == "PASS"
    assert checks["size"].status == "FAIL" and "truncated" in checks["size"].detail


def test_memory_check_in_verify(tmp_path):
    mi = tmp_path / "meminfo"
    mi.write_text("MemTotal: 4000000 kB\nMemAvailable: 1000000 kB\n")
    card = get_card("phi-3-mini", tmp_path)
    checks = {c.name: c for c in ModelStore(tmp_path).verify(card, meminfo=mi)}
    assert checks["memory"].status == "FAIL" and "3748 MB" in checks["memory"].detail


def test_unwritable_models_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    store = ModelStore(blocker / "models")
    with pytest.raises(StoreError, match="not writable.*--models-dir"):
        store.pull(small_card(), download=FakeHub().download, snapshot=FakeHub().snapshot, log=lambda m: None)


def test_simulated_cards_need_no_download(tmp_path):
    store = ModelStore(tmp_path)
    card = get_card("sim-instant", tmp_path)
    path = store.pull(card, download=None, log=lambda m: None)
    assert path.is_file()
    checks = {c.name: c.status for c in store.verify(card)}
    assert checks["file"] == "PASS" and checks["format"] == "PASS" and checks["tokenizer"] == "PASS"


def test_cli_list_path_and_unknown_id(tmp_path):
    code, out, _ = run_cmd("models", ["models", "list", "--models-dir", str(tmp_path)])
    assert code == 0 and "qwen2.5-1.5b-instruct" in out and "sim-instant" in out
    code, out, _ = run_cmd("models", ["models", "list", "--json", "--models-dir", str(tmp_path)])
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["qwen3-4b"]["reasoning"] and not rows["qwen3-4b"]["installed"]
    code, _, err = run_cmd("models", ["models", "path", "qwen3-4b", "--models-dir", str(tmp_path)])
    assert code == 1 and "models pull qwen3-4b" in err
    code, _, err = run_cmd("models", ["models", "pull", "no-such-model", "--models-dir", str(tmp_path)])
    assert code == 1 and "known models" in err and "Traceback" not in err


def test_cli_verify_with_a_pre_seeded_hugging_face_cache(tmp_path):
    """Real huggingface_hub cache lookup (offline): the tokenizer counts as present once cached."""
    cache = tmp_path / "hf"
    snap = cache / "models--org--tiny-tok" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "tokenizer_config.json").write_text("{}")
    (cache / "models--org--tiny-tok" / "refs").mkdir()
    (cache / "models--org--tiny-tok" / "refs" / "main").write_text("a" * 40)
    models = tmp_path / "models"
    (models / "catalog").mkdir(parents=True)
    (models / "catalog" / "tiny.toml").write_text(
        'id = "tiny"\npretty_name = "Tiny"\nfamily = "t"\nfile = "tiny.rkllm"\ntokenizer = "org/tiny-tok"\n'
        'context_length = 512\nmemory_mb = 1\n')
    (models / "tiny").mkdir()
    (models / "tiny" / "tiny.rkllm").write_bytes(PAYLOAD)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    res = run_cmd_subprocess("models", ["models", "verify", "tiny", "--models-dir", str(models)], env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASS tokenizer" in res.stdout and "Hugging Face cache" in res.stdout
    res = run_cmd_subprocess("models", ["models", "path", "tiny", "--models-dir", str(models)], env=env)
    assert res.stdout.strip() == str(models / "tiny" / "tiny.rkllm")
    (snap / "tokenizer_config.json").unlink()
    res = run_cmd_subprocess("models", ["models", "verify", "tiny", "--models-dir", str(models)], env=env)
    assert res.returncode == 1 and "FAIL tokenizer" in res.stdout and "models pull tiny" in res.stdout


def test_card_files_are_found_in_the_models_dir_the_card_came_from(tmp_path, monkeypatch):
    """`serve --models-dir X` looks cards up in X; the default store must then find their files in X too."""
    monkeypatch.setenv("EXO_RKLLM_MODELS_DIR", str(tmp_path / "elsewhere"))
    card = get_card("qwen3-0.6b", tmp_path / "x")
    assert ModelStore().model_file(card) == tmp_path / "x" / "qwen3-0.6b" / card.file
    assert ModelStore(tmp_path / "y").model_file(card) == tmp_path / "y" / "qwen3-0.6b" / card.file


def test_a_download_symlinked_into_a_cache_becomes_a_real_file(tmp_path):
    """Older huggingface_hub versions symlink local_dir files into the HF cache (unreadable for the service)."""
    cache_blob = tmp_path / "hf-cache" / "blob"
    cache_blob.parent.mkdir()
    cache_blob.write_bytes(PAYLOAD)

    def linking_download(*, repo_id, filename, local_dir):
        link = Path(local_dir) / filename
        link.symlink_to(cache_blob)
        return str(link)

    store = ModelStore(tmp_path / "m")
    path = store.pull(small_card(), download=linking_download, snapshot=FakeHub().snapshot,
                      sha256_lookup=lambda c: None, log=lambda m: None)
    assert not path.is_symlink() and path.read_bytes() == PAYLOAD and cache_blob.read_bytes() == PAYLOAD
