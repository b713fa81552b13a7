"""exo-rkllm model catalog: one TOML card per model, shipped as package data.

Read through ``exo_rkllm.catalog`` (``importlib.resources`` over this package), so cards work
from a wheel install as well as from a checkout. Figures (``memory_mb``, ``decode_tok_s``,
``ttft_ms_128``) are Rockchip's RKLLM 1.2.3 RK3588 benchmark (w8a8, 128-token prompt, pinned
frequencies) where Rockchip published the row; other values are marked as estimates in the card.
"""
