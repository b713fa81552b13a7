"""One module per `exo-rkllm` subcommand. Each exposes ``register(subparsers)``.

Modules import only the standard library at top level so `exo-rkllm --help` stays fast;
heavy imports (numpy, aiohttp, transformers) happen inside the command handlers.
"""
