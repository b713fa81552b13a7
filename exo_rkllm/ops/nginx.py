"""nginx configuration for a rack of RKLLM nodes.

Boards add throughput by serving whole requests side by side (a compiled RKLLM model cannot be split by
layer), so the balancer is plain nginx: least_conn, passive health, retry on the next node before any byte
reached the client. This module validates the user's input and renders ``templates/nginx.conf.tmpl``;
``standalone`` wraps it in a complete nginx.conf that runs unprivileged with ``nginx -p PREFIX -c FILE``.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from string import Template

DEFAULT_NODE_PORT = 52415
DEFAULT_LISTEN = "127.0.0.1:8080"
UPSTREAM_NAME = "exo_rkllm_nodes"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
INSTALL_HINT = "install it (Debian/Ubuntu: `sudo apt-get install nginx-light`, or the `nginx` package)"

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_SIZE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")


class NginxConfigError(ValueError):
    """Bad balancer input; the message names the cause and the fix."""


class NginxNotFoundError(RuntimeError):
    """No nginx binary: validation and the cluster tests need a real one."""


class _AtTemplate(Template):
    # nginx uses `$` for its own variables; `@{name}` keeps the template readable as nginx config.
    delimiter = "@"


@dataclass(frozen=True)
class Endpoint:
    """A HOST:PORT pair as nginx writes it (IPv6 hosts in brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _parse_port(text: str, spec: str, what: str) -> int:
    if not text.isdigit():
        raise NginxConfigError(
            f"{what} {spec!r}: port {text!r} is not a number; write HOST:PORT, e.g. 192.168.1.21:{DEFAULT_NODE_PORT}"
        )
    port = int(text)
    if not 1 <= port <= 65535:
        raise NginxConfigError(f"{what} {spec!r}: port {port} is outside 1-65535; use the port the node listens on")
    return port


def _check_host(host: str, spec: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.replace(".", "").isdigit():
        raise NginxConfigError(f"{what} {spec!r}: {host!r} is not a valid IPv4 address")
    if not _HOSTNAME.match(host):
        raise NginxConfigError(
            f"{what} {spec!r}: {host!r} is not a valid host name or IP address "
            "(letters, digits, '-' and '.' only; IPv6 goes in brackets: [fd00::21]:52415)"
        )
    return host.rstrip(".").lower()


def parse_endpoint(spec: str, what: str = "--node") -> Endpoint:
    """Parse HOST:PORT, [IPv6]:PORT; the port is required so a typo never picks a default silently."""
    text = spec.strip()
    if not text:
        raise NginxConfigError(f"{what}: empty value; write HOST:PORT, e.g. 192.168.1.21:{DEFAULT_NODE_PORT}")
    if "://" in text or "/" in text:
        raise NginxConfigError(
            f"{what} {spec!r}: give HOST:PORT only, without scheme or path (e.g. 192.168.1.21:{DEFAULT_NODE_PORT})"
        )
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise NginxConfigError(f"{what} {spec!r}: write an IPv6 node as [ADDRESS]:PORT, e.g. [fd00::21]:52415")
        host, port_text = text[1:end], text[end + 2 :]
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise NginxConfigError(f"{what} {spec!r}: {host!r} is not a valid IPv6 address") from None
        return Endpoint(host, _parse_port(port_text, spec, what))
    if text.count(":") > 1:
        raise NginxConfigError(f"{what} {spec!r}: put an IPv6 address in brackets, e.g. [fd00::21]:52415")
    if ":" not in text:
        raise NginxConfigError(
            f"{what} {spec!r}: the port is missing; write HOST:PORT (nodes listen on {DEFAULT_NODE_PORT} by default)"
        )
    host, port_text = text.split(":", 1)
    if not host:
        raise NginxConfigError(f"{what} {spec!r}: the host is missing; write HOST:PORT")
    return Endpoint(_check_host(host, spec, what), _parse_port(port_text, spec, what))


def parse_listen(spec: str) -> Endpoint:
    """The balancer's own address: HOST:PORT, or a bare PORT meaning all IPv4 interfaces."""
    text = spec.strip()
    if text.isdigit():
        return Endpoint("0.0.0.0", _parse_port(text, spec, "--listen"))
    return parse_endpoint(text, "--listen")


def parse_nodes(specs: list[str]) -> list[Endpoint]:
    """Every node once; duplicates are an error because nginx would double that node's share."""
    if not specs:
        raise NginxConfigError("no nodes given; pass --node HOST:PORT once per board (e.g. --node 192.168.1.21:52415)")
    nodes: list[Endpoint] = []
    seen: dict[Endpoint, str] = {}
    for spec in specs:
        node = parse_endpoint(spec)
        if node in seen:
            raise NginxConfigError(f"--node {spec!r} repeats --node {seen[node]!r}; list each board once")
        seen[node] = spec
        nodes.append(node)
    return nodes


def _positive(value: float, flag: str) -> float:
    if not value > 0:
        raise NginxConfigError(f"{flag} must be a positive number of seconds, got {value}")
    return value


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class BalancerSettings:
    """Everything the template needs; defaults suit a rack on a LAN."""

    nodes: list[Endpoint]
    listen: Endpoint = field(default_factory=lambda: parse_listen(DEFAULT_LISTEN))
    max_fails: int = 3
    fail_timeout_s: float = 10
    connect_timeout_s: float = 3
    send_timeout_s: float = 60
    read_timeout_s: float = 900
    next_upstream_timeout_s: float = 0
    client_max_body_size: str = "2m"
    keepalive: int = 32
    pass_authorization: bool = True
    upstream_header: bool = False
    access_log: str = "/var/log/nginx/exo-rkllm.access.log"

    def validate(self) -> "BalancerSettings":
        if not self.nodes:
            raise NginxConfigError("no nodes given; pass --node HOST:PORT once per board")
        if len(set(self.nodes)) != len(self.nodes):
            raise NginxConfigError("a node is listed twice; list each board once")
        if self.listen in self.nodes:
            raise NginxConfigError(f"--listen {self.listen} is also a node address; give the balancer its own port")
        if self.max_fails < 0:
            raise NginxConfigError(f"--max-fails must be 0 (never mark a node down) or more, got {self.max_fails}")
        if self.keepalive < 1:
            raise NginxConfigError(f"--keepalive must be at least 1 idle connection, got {self.keepalive}")
        for value, flag in (
            (self.fail_timeout_s, "--fail-timeout"),
            (self.connect_timeout_s, "--connect-timeout"),
            (self.send_timeout_s, "--send-timeout"),
            (self.read_timeout_s, "--read-timeout"),
        ):
            _positive(value, flag)
        if self.next_upstream_timeout_s < 0:
            raise NginxConfigError("--retry-timeout must be 0 (no limit) or a positive number of seconds")
        if not _SIZE.match(self.client_max_body_size):
            raise NginxConfigError(
                f"--client-max-body-size {self.client_max_body_size!r}: write a size such as 16m, 512k or 1g"
            )
        if not self.access_log or any(c in self.access_log for c in " ;'\"{}\n"):
            raise NginxConfigError(f"--access-log {self.access_log!r}: give a path without spaces or quotes, or 'off'")
        return self


def _template() -> _AtTemplate:
    text = resources.files("exo_rkllm").joinpath("templates/nginx.conf.tmpl").read_text(encoding="utf-8")
    return _AtTemplate(text)


def _proxy_headers(settings: BalancerSettings) -> str:
    lines = [
        'proxy_set_header Connection "";',
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ]
    if not settings.pass_authorization:
        lines.append('proxy_set_header Authorization "";  # --strip-authorization: nodes never see API keys')
    return "\n".join("        " + line for line in lines)


def render_http(settings: BalancerSettings) -> str:
    """The http-context configuration (upstream + server) for /etc/nginx/conf.d/."""
    settings.validate()
    fail = _seconds(settings.fail_timeout_s)
    server_lines = "\n".join(
        f"    server {node} max_fails={settings.max_fails} fail_timeout={fail}s;" for node in settings.nodes
    )
    access_log = "off" if settings.access_log == "off" else f"{settings.access_log} exo_rkllm_upstream"
    headers = [
        "# Tell any further proxy in front of this one not to buffer the stream either.",
        "add_header X-Accel-Buffering no always;",
    ]
    if settings.upstream_header:
        headers += [
            "# --upstream-header: which node(s) nginx tried, for debugging (reveals internal addresses).",
            "add_header X-RKLLM-Upstream $upstream_addr always;",
        ]
    response_headers = "\n".join("    " + line for line in headers)
    return _template().substitute(
        node_count=len(settings.nodes),
        upstream_name=UPSTREAM_NAME,
        server_lines=server_lines,
        keepalive=settings.keepalive,
        listen=str(settings.listen),
        access_log=access_log,
        client_max_body_size=settings.client_max_body_size,
        response_headers=response_headers,
        # add_header in a location replaces the inherited ones, so the error location repeats them
        response_headers_inner="\n".join("    " + line for line in response_headers.splitlines()),
        retry_after=max(1, math.ceil(settings.fail_timeout_s)),
        connect_timeout=_seconds(settings.connect_timeout_s),
        send_timeout=_seconds(settings.send_timeout_s),
        read_timeout=_seconds(settings.read_timeout_s),
        next_upstream_timeout=_seconds(settings.next_upstream_timeout_s),
        node_list_json=",".join(f'"{node}"' for node in settings.nodes),
        cluster_nodes=",".join(str(node) for node in settings.nodes),
        proxy_headers=_proxy_headers(settings),
    )


def render_standalone(settings: BalancerSettings, prefix: Path, worker_processes: str = "auto") -> str:
    """A complete nginx.conf whose pid, logs and temp files live under ``prefix`` (no root needed)."""
    if not (worker_processes == "auto" or (worker_processes.isdigit() and int(worker_processes) > 0)):
        raise NginxConfigError(f"--worker-processes {worker_processes!r}: give 'auto' or a positive number")
    prefix = Path(prefix).resolve()
    if any(c in str(prefix) for c in " ;'\"{}\n"):
        raise NginxConfigError(f"--standalone {prefix}: choose a directory path without spaces or quotes")
    if settings.access_log == BalancerSettings.access_log:
        settings = replace(settings, access_log=str(prefix / "access.log"))
    http = render_http(settings)
    body = "\n".join("    " + line if line else "" for line in http.splitlines())
    return f"""# Standalone nginx.conf for the exo-rkllm balancer; everything nginx writes lives under {prefix}.
# Run unprivileged: nginx -p {prefix} -c {prefix}/nginx.conf -e {prefix}/error.log
# Stop: nginx -p {prefix} -c {prefix}/nginx.conf -e {prefix}/error.log -s quit
worker_processes {worker_processes};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;

{body}
}}
"""


def find_nginx() -> Path:
    """The nginx binary on PATH or in the usual sbin directories (sbin is often not on a user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return Path(found)
    for candidate in NGINX_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise NginxNotFoundError(f"nginx was not found on PATH or in {', '.join(NGINX_CANDIDATES)}; {INSTALL_HINT}")


def nginx_command(nginx: Path, prefix: Path, conf: Path, *extra: str) -> list[str]:
    """nginx invocation that keeps every file under ``prefix`` (``-e`` avoids /var/log/nginx at startup)."""
    return [str(nginx), "-p", str(prefix), "-c", str(conf), "-e", str(Path(prefix) / "error.log"), *extra]


def check_standalone(conf: Path, prefix: Path, nginx: Path | None = None) -> str:
    """Run ``nginx -t`` on a standalone config; return nginx's report or raise NginxConfigError with it."""
    nginx = nginx or find_nginx()
    proc = subprocess.run(
        nginx_command(nginx, prefix, conf, "-t"), capture_output=True, text=True, timeout=30, check=False
    )
    report = (proc.stderr + proc.stdout).strip()
    if proc.returncode != 0:
        raise NginxConfigError(f"nginx -t rejected the configuration:\n{report}")
    return report


def check_settings(settings: BalancerSettings, nginx: Path | None = None) -> str:
    """Validate the rendered configuration with the real ``nginx -t`` in a throwaway prefix."""
    with tempfile.TemporaryDirectory(prefix="exo-rkllm-nginx-") as tmp:
        prefix = Path(tmp)
        conf = prefix / "nginx.conf"
        conf.write_text(render_standalone(replace(settings, access_log="off"), prefix, "1"), encoding="utf-8")
        return check_standalone(conf, prefix, nginx)
