"""exo's view of the catalog: model_cards entries keyed by this engine's class name, and pretty names.

``MODEL_CARDS`` is what the plug-in-discovery fork loads from the ``exo.models`` entry point (a dict in
exo's model_cards format). The "repo" exo resolves a tokenizer from is the card's tokenizer: a Hugging
Face repo id for real models, the shipped local tokenizer directory for simulated ones (no download).
"""

from __future__ import annotations

ENGINE_CLASS_NAME = "RKLLMInferenceEngine"


def _tokenizer_repo(card) -> str:
    from exo_rkllm.catalog import tokenizer_location

    return str(tokenizer_location(card))


def build_model_cards(simulated: bool | None = None) -> dict[str, dict]:
    """model_cards entries for every catalog card (only simulated ones, or only real ones, if asked)."""
    from exo_rkllm.catalog import load_catalog

    cards = {}
    for card in load_catalog().values():
        if simulated is not None and card.simulated != simulated:
            continue
        cards[card.id] = {"layers": card.layers, "repo": {ENGINE_CLASS_NAME: _tokenizer_repo(card)}}
    return cards


def build_pretty_names(simulated: bool | None = None) -> dict[str, str]:
    from exo_rkllm.catalog import load_catalog

    return {c.id: c.pretty_name for c in load_catalog().values() if simulated is None or c.simulated == simulated}


MODEL_CARDS: dict[str, dict] = build_model_cards()
