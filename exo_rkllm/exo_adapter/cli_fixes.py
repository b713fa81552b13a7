"""exo's `--run-model MODEL --prompt TEXT` for this engine: every token of the reply, then a clean stop.

exo v0.0.15-alpha's run_model_cli starts listening only after the first token and keeps just the latest
callback result each time its waiter wakes, so tokens arriving faster than that (the simulator, a
`cached` model replaying its reply) are lost and the printed reply is garbled. This version subscribes
before the prompt is sent, keeps every token of its request, and stops the engine's worker at the end.
Imports exo: load only from the launcher.
"""

from __future__ import annotations

import asyncio
import uuid

from exo.models import build_base_shard, get_repo

RUN_MODEL_TIMEOUT_S = 900.0


async def run_model_cli(node, model_name: str, prompt: str) -> None:
    import exo.inference.tokenizers as tokenizers

    from exo_rkllm.exo_adapter.engine import RKLLMInferenceEngine

    engine_class = node.inference_engine.__class__.__name__
    shard = build_base_shard(model_name, engine_class)
    if not shard:
        print(f"Error: Unsupported model '{model_name}' for inference engine {engine_class}")
        return
    tokenizer = await tokenizers.resolve_tokenizer(get_repo(shard.model_id, engine_class))
    request_id = str(uuid.uuid4())
    tokens: list[int] = []
    finished = asyncio.Event()

    def on_token(rid, new_tokens, is_finished):
        if rid == request_id:
            tokens.extend(new_tokens)
            if is_finished:
                finished.set()

    callback_id = f"cli-wait-response-{request_id}"
    node.on_token.register(callback_id).on_next(on_token)
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        await node.process_prompt(shard, text, request_id=request_id)
        await asyncio.wait_for(finished.wait(), RUN_MODEL_TIMEOUT_S)
        print("\nGenerated response:")
        print(tokenizer.decode(tokens))
    finally:
        node.on_token.deregister(callback_id)
        if isinstance(node.inference_engine, RKLLMInferenceEngine):
            await node.inference_engine.close()
