"""Simulated RKLLM 1.2.3 runtime: C sources of librkllmrt-sim.so, simulated models and their tokenizers.

Package data only; build and locate it with ``exo_rkllm.sim`` (``exo-rkllm sim build``).
The simulator is the project's only stand-in for an RK3588 NPU and never produces NPU results.
"""
