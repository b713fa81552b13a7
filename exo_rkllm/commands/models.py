"""`exo-rkllm models list|pull|verify|path|import`: the models directory from the command line."""

from __future__ import annotations

import argparse
import json
import sys


def add_models_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", default=None,
                        help="models directory (default: $EXO_RKLLM_MODELS_DIR or ~/.local/share/exo-rkllm/models)")


def register(sub) -> None:
    p = sub.add_parser("models", help="list, pull, verify, locate and import models",
                       description="Manage the models directory and the model catalog.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True

    q = msub.add_parser("list", help="every catalog model with its install status")
    add_models_dir_arg(q)
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_list)

    q = msub.add_parser("pull", help="download a model and its tokenizer from the Hugging Face Hub")
    add_models_dir_arg(q)
    q.add_argument("model_id")
    q.set_defaults(func=cmd_pull)

    q = msub.add_parser("verify", help="check installed models: file, header, size, tokenizer, memory fit")
    add_models_dir_arg(q)
    q.add_argument("model_ids", nargs="*", help="default: every installed model")
    q.add_argument("--checksum", action="store_true", help="also recompute the sha256 (slow for big files)")
    q.set_defaults(func=cmd_verify)

    q = msub.add_parser("path", help="print the model file's path")
    add_models_dir_arg(q)
    q.add_argument("model_id")
    q.set_defaults(func=cmd_path)

    q = msub.add_parser("import", help="import rkllama model folders (Modelfile + .rkllm), files reused in place")
    add_models_dir_arg(q)
    q.add_argument("folder", help="an rkllama model folder, or rkllama's models directory (imports each)")
    q.add_argument("--id", dest="model_id", default=None, help="catalog id (default: from the folder name)")
    q.add_argument("--memory-mb", type=int, default=None, help="memory the model needs (default: from file size)")
    q.set_defaults(func=cmd_import)


def _store(args):
    from exo_rkllm.ops.store import ModelStore

    return ModelStore(args.models_dir)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 1


def _card(store, model_id):
    from exo_rkllm.catalog import get_card

    return get_card(model_id, store.root)


def cmd_list(args) -> int:
    from exo_rkllm.catalog import CatalogError

    store = _store(args)
    try:
        cards = store.catalog()
    except CatalogError as exc:
        return _fail(str(exc))
    rows = []
    for card in sorted(cards.values(), key=lambda c: (c.simulated, c.id)):
        rows.append({"id": card.id, "name": card.pretty_name, "memory_mb": card.memory_mb,
                     "reasoning": card.reasoning, "simulated": card.simulated,
                     "installed": store.is_installed(card), "source": card.source,
                     "decode_tok_s": card.decode_tok_s})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"models directory: {store.root}")
    print(f"{'ID':32} {'STATUS':10} {'MEMORY':>8} {'TOK/S':>6}  NAME")
    for r in rows:
        status = "installed" if r["installed"] else "-"
        tps = f"{r['decode_tok_s']:.1f}" if r["decode_tok_s"] else "?"
        flags = (" [reasoning]" if r["reasoning"] else "") + (" [simulated]" if r["simulated"] else "") + \
                (" [imported]" if r["source"] != "builtin" else "")
        print(f"{r['id']:32} {status:10} {r['memory_mb']:>6}MB {tps:>6}  {r['name']}{flags}")
    return 0


def cmd_pull(args) -> int:
    from exo_rkllm.catalog import CatalogError
    from exo_rkllm.ops.store import StoreError

    store = _store(args)
    try:
        card = _card(store, args.model_id)
        path = store.pull(card)
    except KeyError as exc:
        return _fail(str(exc))
    except (StoreError, CatalogError) as exc:
        return _fail(str(exc))
    print(path)
    return 0


def cmd_verify(args) -> int:
    from exo_rkllm.catalog import CatalogError

    store = _store(args)
    try:
        cards = store.catalog()
        if args.model_ids:
            chosen = [_card(store, m) for m in args.model_ids]
        else:
            chosen = [c for c in cards.values() if store.is_installed(c) and not c.simulated]
    except (KeyError, CatalogError) as exc:
        return _fail(str(exc))
    if not chosen:
        print(f"no models installed in {store.root}; pull one with `exo-rkllm models pull ID` "
              f"(see `exo-rkllm models list`)")
        return 0
    failed = False
    for card in chosen:
        print(f"{card.id}:")
        for check in store.verify(card, checksum=args.checksum):
            failed |= check.status == "FAIL"
            fix = f"  -> {check.fix}" if check.fix and check.status in ("FAIL", "WARN") else ""
            print(f"  {check.status:4} {check.name:9} {check.detail}{fix}")
    return 1 if failed else 0


def cmd_path(args) -> int:
    from exo_rkllm.catalog import CatalogError
    from exo_rkllm.ops.store import StoreError

    store = _store(args)
    try:
        card = _card(store, args.model_id)
        path = store.model_file(card)
    except (KeyError, CatalogError, StoreError) as exc:
        return _fail(str(exc))
    if not path.is_file():
        return _fail(f"{card.id} is not installed (expected {path}); run `exo-rkllm models pull {card.id}`")
    print(path)
    return 0


def cmd_import(args) -> int:
    from pathlib import Path

    from exo_rkllm.catalog import CatalogError
    from exo_rkllm.ops.rkllama_import import ModelfileError, find_model_folders, import_folder
    from exo_rkllm.ops.store import StoreError

    store = _store(args)
    try:
        folders = find_model_folders(Path(args.folder).expanduser())
    except ModelfileError as exc:
        return _fail(str(exc))
    if args.model_id and len(folders) > 1:
        return _fail(f"--id names one model but {args.folder} holds {len(folders)} model folders; "
                     f"import them one at a time")
    errors = 0
    for folder in folders:
        try:
            res = import_folder(store, folder, model_id=args.model_id, memory_mb=args.memory_mb)
        except (ModelfileError, StoreError, CatalogError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            errors += 1
            continue
        print(f"imported {res.card.id} -> {res.card_path}")
        for note in res.notes:
            print(f"  {note}")
    return 1 if errors else 0
