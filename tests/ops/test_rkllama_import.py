"""Importing rkllama model folders: a Modelfile becomes a catalog entry; files stay where they are."""

from __future__ import annotations

import pytest

from exo_rkllm.catalog import get_card
from exo_rkllm.ops.rkllama_import import ModelfileError, import_folder, parse_modelfile
from exo_rkllm.ops.store import ModelStore

from .helpers import run_cmd

WEIGHTS = b"\x01\x02fake-rkllm-weights" * 50000   # ~1 MB


def rkllama_folder(root, name, modelfile, with_tokenizer=False):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.rkllm").write_bytes(WEIGHTS)
    (folder / "Modelfile").write_text(modelfile)
    if with_tokenizer:
        (folder / "tokenizer").mkdir()
        (folder / "tokenizer" / "tokenizer.json").write_text("{}")
    return folder


def test_parse_modelfile_syntax():
    values = parse_modelfile('# comment\nFROM="m.rkllm"\nHUGGINGFACE_PATH="Qwen/Qwen2.5-1.5B-Instruct"\n'
                             'SYSTEM="You are \\"kind\\".\\nBe brief."\nTEMPERATURE=0.7\nTOP_K=20\n'
                             'ENABLE_THINKING=true\n')
    assert values == {"FROM": "m.rkllm", "HUGGINGFACE_PATH": "Qwen/Qwen2.5-1.5B-Instruct",
                      "SYSTEM": 'You are "kind".\nBe brief.', "TEMPERATURE": 0.7, "TOP_K": 20,
                      "ENABLE_THINKING": True}
    with pytest.raises(ModelfileError, match=":2: expected KEY=value"):
        parse_modelfile('FROM="a"\nthis is not a setting\n')


def test_import_becomes_a_catalog_entry_with_files_in_place(tmp_path):
    folder = rkllama_folder(tmp_path / "rkllama" / "models", "Qwen2.5-1.5B-Custom",
                            'FROM="model.rkllm"\nHUGGINGFACE_PATH="Qwen/Qwen2.5-1.5B-Instruct"\n'
                            'SYSTEM="Answer in French."\nTEMPERATURE=0.3\nTOP_P=0.9\nNUM_CTX=2048\n'
                            'MAX_NEW_TOKENS=512\nTOKENIZER="tokenizer"\nTEMPLATE="{{ .Prompt }}"\n',
                            with_tokenizer=True)
    store = ModelStore(tmp_path / "models")
    res = import_folder(store, folder)
    assert res.card_path == tmp_path / "models" / "catalog" / "qwen2.5-1.5b-custom.toml"
    assert any("ignored TEMPLATE" in n for n in res.notes)
    card = get_card("qwen2.5-1.5b-custom", tmp_path / "models")   # read back from disk
    assert card.model_path == str(folder / "model.rkllm")
    assert card.system_prompt == "Answer in French." and card.context_length == 2048
    assert card.sampling == {"temperature": 0.3, "top_p": 0.9} and card.max_new_tokens == 512
    assert card.tokenizer == str(folder / "tokenizer")
    assert store.model_file(card) == folder / "model.rkllm"
    checks = {c.name: c.status for c in store.verify(card)}
    assert checks["file"] == "PASS" and checks["tokenizer"] == "PASS"
    assert not (tmp_path / "models" / "qwen2.5-1.5b-custom").exists()   # nothing copied


def test_thinking_models_become_reasoning_cards(tmp_path):
    folder = rkllama_folder(tmp_path, "r1", 'FROM="model.rkllm"\nHUGGINGFACE_PATH="deepseek-ai/x"\n'
                            'ENABLE_THINKING=true\n')
    card = import_folder(ModelStore(tmp_path / "m"), folder, model_id="my-r1", memory_mb=1700).card
    assert card.reasoning and card.think_end == "</think>" and card.delivery == "stream" and card.memory_mb == 1700


@pytest.mark.parametrize("modelfile, match", [
    ('HUGGINGFACE_PATH="a/b"\n', "missing FROM"),
    ('FROM="model.rkllm"\n', "missing HUGGINGFACE_PATH"),
    ('FROM="model.rkllm"\nHUGGINGFACE_PATH="a/b"\nTEMPERATUR=0.5\n', "unknown key.*TEMPERATUR"),
    ('FROM="other.rkllm"\nHUGGINGFACE_PATH="a/b"\n', "does not exist"),
    ('FROM="model.rkllm"\nHUGGINGFACE_PATH="a/b"\nVISION_ENCODER="v.rknn"\n', "vision"),
    ('FROM="model.rkllm"\nHUGGINGFACE_PATH="a/b"\nTOP_K=high\n', "TOP_K must be an integer"),
])
def test_bad_modelfiles_are_refused_with_the_reason(tmp_path, modelfile, match):
    folder = rkllama_folder(tmp_path, "bad", modelfile)
    store = ModelStore(tmp_path / "m")
    with pytest.raises(ModelfileError, match=match):
        import_folder(store, folder)
    assert not (tmp_path / "m" / "catalog").exists() or not list((tmp_path / "m" / "catalog").iterdir())


def test_cli_imports_a_whole_rkllama_models_directory(tmp_path):
    root = tmp_path / "rkllama-models"
    rkllama_folder(root, "qwen-a", 'FROM="model.rkllm"\nHUGGINGFACE_PATH="Qwen/Qwen2.5-1.5B-Instruct"\n')
    rkllama_folder(root, "qwen-b", 'FROM="model.rkllm"\nHUGGINGFACE_PATH="Qwen/Qwen2.5-3B-Instruct"\n')
    models = tmp_path / "models"
    code, out, err = run_cmd("models", ["models", "import", str(root), "--models-dir", str(models)])
    assert code == 0, err
    assert "imported qwen-a" in out and "imported qwen-b" in out
    code, out, _ = run_cmd("models", ["models", "path", "qwen-b", "--models-dir", str(models)])
    assert code == 0 and out.strip() == str(root / "qwen-b" / "model.rkllm")
    # A shipped id cannot be taken over by an import.
    code, _, err = run_cmd("models", ["models", "import", str(root / "qwen-a"), "--id", "sim-instant",
                                      "--models-dir", str(models)])
    assert code == 1 and "already taken" in err
