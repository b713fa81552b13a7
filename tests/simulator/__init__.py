"""Tests of the simulated RKLLM runtime (bindings/simulator, exo_rkllm/sim.py)."""
