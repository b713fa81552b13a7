"""The exo adapter: the only package in exo-rkllm that imports exo.

``engine.RKLLMInferenceEngine`` plugs the serving core into exo's inference-engine contract;
``launcher`` runs legacy exo (v0.0.15-alpha) with the engine registered; ``registration`` holds the
model cards in exo's format; ``device`` what the node reports about its hardware. Loaded only by the
launcher, because they import exo: ``api_fixes`` (exo's API for these models), ``downloads`` (the shard
downloader), ``cli_fixes`` (exo's --run-model). Importing this package itself imports nothing from exo.
"""
