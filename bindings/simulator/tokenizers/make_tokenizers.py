"""Generate the Hugging Face tokenizers of the simulated models (run from anywhere; output is committed).

Why: the serving core templates chats and counts tokens with a real ``transformers`` tokenizer, so the
simulated vocabulary (docs/architecture.md section 1) must exist as tokenizer files loadable offline:
ids 0..255 are the bytes themselves (byte-level BPE with no merges), 256..262 the added tokens.

    python bindings/simulator/tokenizers/make_tokenizers.py      # rewrites chat/ and reasoning/
    python bindings/simulator/tokenizers/make_tokenizers.py --out DIR   # writes elsewhere (tests compare)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

HERE = Path(__file__).resolve().parent
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # 256..258: dropped by skip_special_tokens
ALWAYS_TEXT = ["<think>", "</think>", "<tool_call>", "</tool_call>"]  # 259..262: always carry their text
MAX_LEN = 4096

DEFAULT_SYSTEM = "You are a helpful assistant."
TOOLS_INTRO = (
    "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>"
)
TOOLS_OUTRO = (
    "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags."
)


def bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character table of byte-level BPE (as GPT-2 defined it)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def chat_template(reasoning: bool) -> str:
    """ChatML, matching the simulator's built-in template for prompt input token for token."""
    content = "message['content'] or ''"
    if reasoning:  # R1-style: earlier turns' reasoning is not sent back to the model
        content = "((message['content'] or '').split('</think>')[-1] | trim)"
    gen = "'<|im_start|>assistant\\n<think>\\n'" if reasoning else "'<|im_start|>assistant\\n'"
    return (
        "{%- if messages and messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}"
        "{%- set rest = messages[1:] %}{%- else %}"
        f"{{%- set system = '{DEFAULT_SYSTEM}' %}}{{%- set rest = messages %}}{{%- endif %}}"
        "{{- '<|im_start|>system\\n' + system }}"
        "{%- if tools %}"
        f"{{{{- '{TOOLS_INTRO}' }}}}"
        "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
        f"{{{{- '{TOOLS_OUTRO}' }}}}"
        "{%- endif %}"
        "{{- '<|im_end|>\\n' }}"
        "{%- for message in rest %}"
        "{%- if message['role'] == 'tool' %}"
        "{{- '<|im_start|>user\\n<tool_response>\\n' + (message['content'] or '') + '\\n</tool_response><|im_end|>\\n' }}"
        "{%- elif message['role'] == 'assistant' %}"
        f"{{{{- '<|im_start|>assistant\\n' + {content} }}}}"
        "{%- for call in (message.get('tool_calls') or []) %}"
        "{%- set fn = call['function'] if call.get('function') else call %}"
        "{{- '<tool_call>\\n{\"name\": \"' + fn['name'] + '\", \"arguments\": ' }}"
        "{%- if fn['arguments'] is string %}{{- fn['arguments'] }}{%- else %}{{- fn['arguments'] | tojson }}{%- endif %}"
        "{{- '}\\n</tool_call>' }}"
        "{%- endfor %}"
        "{{- '<|im_end|>\\n' }}"
        "{%- else %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>\\n' }}"
        "{%- endif %}"
        "{%- endfor %}"
        f"{{%- if add_generation_prompt %}}{{{{- {gen} }}}}{{%- endif %}}"
    )


def build_tokenizer() -> Tokenizer:
    b2u = bytes_to_unicode()
    tok = Tokenizer(models.BPE(vocab={b2u[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ALWAYS_TEXT])
    for i, t in enumerate(SPECIAL + ALWAYS_TEXT):
        assert tok.token_to_id(t) == 256 + i, (t, tok.token_to_id(t))
    return tok


def tokenizer_config(reasoning: bool) -> dict:
    added = {
        str(256 + i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                       "single_word": False, "special": t in SPECIAL}
        for i, t in enumerate(SPECIAL + ALWAYS_TEXT)
    }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "model_max_length": MAX_LEN,
        "clean_up_tokenization_spaces": False,
        "chat_template": chat_template(reasoning),
        "comment": "exo-rkllm simulated vocabulary (byte ids 0..255 + 7 added tokens); generated by make_tokenizers.py",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory receiving chat/ and reasoning/")
    args = parser.parse_args(argv)
    tok = build_tokenizer()
    for name, reasoning in (("chat", False), ("reasoning", True)):
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        tok.save(str(out / "tokenizer.json"))
        (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(reasoning), indent=2, ensure_ascii=False) + "\n")
        (out / "special_tokens_map.json").write_text(json.dumps(
            {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
             "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
