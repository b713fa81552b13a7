"""`exo-rkllm nginx-config`: write the nginx configuration that balances a rack of nodes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "nginx-config",
        help="write an nginx config that balances the API across several nodes",
        description=(
            "Write an nginx configuration that spreads requests over RKLLM nodes (least_conn), skips nodes that "
            "are down, and retries on the next node when one is down, busy (503), or does not hold the model "
            "(404), as long as no byte of the reply reached the client. Nodes must run "
            "`exo-rkllm serve --cluster-header` so /v1/models lists every node's models."
        ),
    )
    p.add_argument("--node", action="append", default=[], metavar="HOST:PORT",
                   help="a node's API address; repeat once per board (nodes listen on 52415 by default)")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="[HOST:]PORT",
                   help="where nginx listens (default 127.0.0.1:8080; 0.0.0.0:8080 to serve the LAN)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write here instead of stdout (with --standalone: default PREFIX/nginx.conf)")
    p.add_argument("--standalone", metavar="PREFIX",
                   help="write a complete nginx.conf keeping pid, logs and temp files under PREFIX, "
                        "to run unprivileged: nginx -p PREFIX -c PREFIX/nginx.conf -e PREFIX/error.log")
    p.add_argument("--worker-processes", default="auto", help="standalone only: nginx worker_processes")
    p.add_argument("--max-fails", type=int, default=3,
                   help="failed attempts within --fail-timeout before a node is skipped (0: never skip)")
    p.add_argument("--fail-timeout", type=float, default=10, metavar="SECONDS",
                   help="window for --max-fails and how long a failed node is skipped (default 10)")
    p.add_argument("--connect-timeout", type=float, default=3, metavar="SECONDS",
                   help="give up connecting to a node after this long and try the next (default 3)")
    p.add_argument("--send-timeout", type=float, default=60, metavar="SECONDS")
    p.add_argument("--read-timeout", type=float, default=900, metavar="SECONDS",
                   help="longest silence from a node; reasoning replies think for minutes (default 900)")
    p.add_argument("--retry-timeout", type=float, default=0, metavar="SECONDS",
                   help="stop trying further nodes after this long (default 0: no limit)")
    p.add_argument("--client-max-body-size", default="2m", metavar="SIZE",
                   help="largest request body nginx accepts (default 2m, above the node's own 1 MiB limit so "
                        "the node answers oversized requests with its OpenAI error)")
    p.add_argument("--keepalive", type=int, default=32, help="idle connections kept open to the nodes per worker")
    p.add_argument("--strip-authorization", action="store_true",
                   help="do not pass the client's Authorization header on to the nodes (default: pass it)")
    p.add_argument("--upstream-header", action="store_true",
                   help="add X-RKLLM-Upstream (the node addresses tried) to responses, for debugging")
    p.add_argument("--access-log", metavar="PATH|off",
                   help="access log (default /var/log/nginx/exo-rkllm.access.log; PREFIX/access.log when standalone)")
    p.add_argument("--check", action="store_true", help="validate the result with the real `nginx -t`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from exo_rkllm.ops import nginx

    try:
        settings = nginx.BalancerSettings(
            nodes=nginx.parse_nodes(args.node),
            listen=nginx.parse_listen(args.listen),
            max_fails=args.max_fails,
            fail_timeout_s=args.fail_timeout,
            connect_timeout_s=args.connect_timeout,
            send_timeout_s=args.send_timeout,
            read_timeout_s=args.read_timeout,
            next_upstream_timeout_s=args.retry_timeout,
            client_max_body_size=args.client_max_body_size,
            keepalive=args.keepalive,
            pass_authorization=not args.strip_authorization,
            upstream_header=args.upstream_header,
        )
        if args.access_log:
            settings.access_log = args.access_log
        output = Path(args.output) if args.output else None
        if args.standalone:
            prefix = Path(args.standalone).resolve()
            text = nginx.render_standalone(settings, prefix, args.worker_processes)
            output = output or prefix / "nginx.conf"
            prefix.mkdir(parents=True, exist_ok=True)
        else:
            text = nginx.render_http(settings)
        if args.check:
            # Checked in a throwaway prefix before anything is written, so a rejected config never lands.
            print(nginx.check_settings(settings), file=sys.stderr)
    except (nginx.NginxConfigError, nginx.NginxNotFoundError) as exc:
        print(f"exo-rkllm nginx-config: {exc}", file=sys.stderr)
        return 2
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"exo-rkllm nginx-config: cannot write {output}: {exc.strerror}; choose a writable --output",
              file=sys.stderr)
        return 1
    print(f"wrote {output} ({len(settings.nodes)} node(s))", file=sys.stderr)
    if args.standalone:
        cmd = " ".join(nginx.nginx_command(Path("nginx"), prefix, output))
        print(f"start it with: {cmd}", file=sys.stderr)
    return 0
