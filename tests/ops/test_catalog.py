"""The model catalog: shipped cards, user entries, unknown ids, tokenizer lookup without network."""

from __future__ import annotations

import pytest

from exo_rkllm.catalog import (CatalogError, ModelCard, TokenizerUnavailableError, UnknownModelError,
                               get_card, load_catalog, load_tokenizer, validate_model_id)

REQUIRED_IDS = {
    "qwen2.5-1.5b-instruct", "qwen2.5-3b-instruct", "qwen2.5-7b-instruct",
    "deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b", "phi-3-mini",
    "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b",
    "sim-qwen2.5-1.5b", "sim-deepseek-r1-1.5b", "sim-instant", "sim-reasoning-instant",
}


def test_every_required_model_has_a_card(tmp_path):
    cards = load_catalog(tmp_path)
    assert REQUIRED_IDS <= set(cards)
    for card in cards.values():
        assert isinstance(card, ModelCard)
        assert card.delivery in ("stream", "cached")
        assert card.toolkit_version == "1.2.3"
        if card.reasoning:
            assert card.delivery == "stream" and card.think_start == "<think>" and card.think_end == "</think>"


def test_rockchip_figures_match_the_reference_table(tmp_path):
    assert get_card("qwen2.5-1.5b-instruct", tmp_path).memory_mb == 1659
    assert get_card("qwen2.5-1.5b-instruct", tmp_path).decode_tok_s == pytest.approx(16.32)
    assert get_card("deepseek-r1-distill-qwen-1.5b", tmp_path).ttft_ms_128 == pytest.approx(412.3)
    assert get_card("qwen3-0.6b", tmp_path).memory_mb == 774
    assert get_card("phi-3-mini", tmp_path).memory_mb == 3748


def test_reasoning_flags(tmp_path):
    assert get_card("deepseek-r1-distill-qwen-7b", tmp_path).reasoning
    assert get_card("qwen3-4b", tmp_path).reasoning
    assert not get_card("qwen2.5-3b-instruct", tmp_path).reasoning
    sim = get_card("sim-reasoning-instant", tmp_path)
    assert sim.simulated and sim.sim_model == "reasoning-instant" and sim.reasoning


def test_unknown_id_is_a_keyerror_listing_known_ids_and_the_command(tmp_path):
    with pytest.raises(KeyError) as info:
        get_card("gpt-17", tmp_path)
    assert isinstance(info.value, UnknownModelError)
    text = str(info.value)
    assert "gpt-17" in text and "sim-instant" in text and "exo-rkllm models list" in text


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "Qwen", "x" * 65, ".hidden", "a..b"])
def test_model_ids_that_could_escape_a_directory_are_rejected(bad):
    with pytest.raises(ValueError):
        validate_model_id(bad)


def test_user_entries_join_the_catalog(tmp_path):
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "my-model.toml").write_text(
        'id = "my-model"\npretty_name = "Mine"\nfamily = "qwen2.5"\nfile = "m.rkllm"\n'
        'tokenizer = "Qwen/Qwen2.5-1.5B-Instruct"\ncontext_length = 4096\nmemory_mb = 1700\n'
        '[sampling]\ntemperature = 0.2\n')
    card = get_card("my-model", tmp_path)
    assert card.is_user_entry and card.sampling == {"temperature": 0.2}


def test_user_entry_cannot_redefine_a_shipped_id(tmp_path):
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "x.toml").write_text(
        'id = "sim-instant"\npretty_name = "x"\nfamily = "x"\nfile = "m.rkllm"\n'
        'tokenizer = "a/b"\ncontext_length = 4096\nmemory_mb = 1\n')
    with pytest.raises(CatalogError, match="already defined"):
        load_catalog(tmp_path)


def test_bad_user_card_names_file_and_key(tmp_path):
    (tmp_path / "catalog").mkdir()
    bad = tmp_path / "catalog" / "bad.toml"
    bad.write_text('id = "bad"\npretty_name = "x"\nfamily = "x"\nfile = "m.rkllm"\ntokenizer = "a/b"\n'
                   'context_length = 4096\nmemory_mb = 1\nreasoning = true\nthink_start = "<think>"\n'
                   'think_end = "</think>"\ndelivery = "cached"\n')
    with pytest.raises(CatalogError, match="always stream") as info:
        load_catalog(tmp_path)
    assert str(bad) in str(info.value)
    bad.write_text('id = "bad"\ncolour = "red"\n')
    with pytest.raises(CatalogError, match="colour"):
        load_catalog(tmp_path)


def test_reasoning_budget_must_leave_room_for_the_answer(tmp_path):
    (tmp_path / "catalog").mkdir()
    card = tmp_path / "catalog" / "r.toml"
    head = ('id = "r"\npretty_name = "x"\nfamily = "x"\nfile = "m.rkllm"\ntokenizer = "a/b"\n'
            'context_length = 4096\nmemory_mb = 1\nmax_new_tokens = 1024\n')
    card.write_text(head + 'reasoning = true\nthink_start = "<think>"\nthink_end = "</think>"\nreasoning_budget = 1024\n')
    with pytest.raises(CatalogError, match="below max_new_tokens"):
        load_catalog(tmp_path)
    card.write_text(head + 'reasoning_budget = 100\n')
    with pytest.raises(CatalogError, match="reasoning = true"):
        load_catalog(tmp_path)
    for model_id, c in load_catalog().items():
        if c.reasoning_budget is not None:
            assert c.reasoning_budget < c.max_new_tokens, model_id


def test_missing_tokenizer_names_the_pull_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    card = ModelCard(id="nowhere", pretty_name="n", family="f", file="f.rkllm",
                     tokenizer="nobody-owns/this-repo", context_length=1, memory_mb=1)
    with pytest.raises(TokenizerUnavailableError, match="exo-rkllm models pull nowhere"):
        load_tokenizer(card)


def test_tokenizer_from_a_local_directory(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    tok.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}')
    card = ModelCard(id="local", pretty_name="n", family="f", file="f.rkllm",
                     tokenizer=str(tok_dir), context_length=1, memory_mb=1)
    assert load_tokenizer(card).encode("hello world") == [0, 1]


def test_sim_tokenizer_loads_through_the_catalog(tmp_path):
    tok = load_tokenizer(get_card("sim-reasoning-instant", tmp_path))
    assert tok.convert_tokens_to_ids("<think>") == 259
