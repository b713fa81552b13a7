"""exo-rkllm: LLM serving on Rockchip RK3588 NPUs through RKLLM runtime 1.2.3.

Importing this package is cheap and has no side effects; exo is only imported by
``exo_rkllm.exo_adapter``.
"""

__version__ = "0.1.0"
