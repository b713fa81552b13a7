"""`exo-rkllm nginx-config`: input validation, `nginx -t` on what it writes, and nginx's own routes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from exo_rkllm.cli import main
from exo_rkllm.ops.nginx import nginx_command

from .harness import Balancer, Node, free_port, http_get


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exo_rkllm.cli", "nginx-config", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        (["10.0.0.21"], "port is missing"),
        (["10.0.0.21:70000"], "outside 1-65535"),
        (["10.0.0.21:0"], "outside 1-65535"),
        (["10.0.0.21:http"], "not a number"),
        (["10.0.0.21:52415", "10.0.0.21:52415"], "list each board once"),
        (["board-a:52415", "BOARD-A:52415"], "list each board once"),
        (["http://10.0.0.21:52415"], "without scheme or path"),
        (["fd00::21:52415"], "IPv6 address in brackets"),
        (["[fd00::zz]:52415"], "not a valid IPv6 address"),
        (["10.0.0.300:52415"], "not a valid IPv4 address"),
        (["bad_host!:52415"], "not a valid host name"),
        ([":52415"], "host is missing"),
        ([], "no nodes given"),
    ],
)
def test_bad_node_addresses_are_refused_with_the_cause(nodes, expected, capsys):
    argv = ["nginx-config"]
    for node in nodes:
        argv += ["--node", node]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--listen", "127.0.0.1:52415"], "also a node address"),
        (["--listen", "127.0.0.1:99999"], "outside 1-65535"),
        (["--client-max-body-size", "16 MB"], "write a size such as 16m"),
        (["--read-timeout", "0"], "--read-timeout must be a positive number"),
        (["--max-fails", "-1"], "--max-fails must be 0"),
        (["--worker-processes", "many", "--standalone", "/tmp/unused"], "give 'auto' or a positive number"),
    ],
)
def test_bad_settings_are_refused_with_the_cause(extra, expected, capsys):
    assert main(["nginx-config", "--node", "127.0.0.1:52415", *extra]) == 2
    assert expected in capsys.readouterr().err


def test_standalone_config_passes_nginx_t(nginx_bin, tmp_path):
    prefix = tmp_path / "rack"
    proc = run_cli("--node", "192.168.1.21:52415", "--node", "192.168.1.22:52415", "--node", "[fd00::23]:52415",
                   "--listen", "127.0.0.1:8080", "--standalone", str(prefix), "--check")
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr
    conf = prefix / "nginx.conf"
    checked = subprocess.run(nginx_command(nginx_bin, prefix, conf, "-t"), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_conf_d_snippet_passes_nginx_t_inside_a_main_config(nginx_bin, tmp_path):
    """The default output is for /etc/nginx/conf.d/: check it the way Debian's nginx.conf includes it."""
    snippet = tmp_path / "exo-rkllm.conf"
    proc = run_cli("--node", "board-1.local:52415", "--node", "10.0.0.2:52415", "--listen", "8080",
                   "--access-log", str(tmp_path / "access.log"), "--strip-authorization", "--read-timeout", "1800",
                   "--output", str(snippet))
    assert proc.returncode == 0, proc.stderr
    main_conf = tmp_path / "nginx.conf"
    main_conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\n"
        f"http {{\n client_body_temp_path {tmp_path}/cb;\n proxy_temp_path {tmp_path}/px;\n"
        f" fastcgi_temp_path {tmp_path}/fc;\n uwsgi_temp_path {tmp_path}/uw;\n scgi_temp_path {tmp_path}/sc;\n"
        f" include {snippet};\n}}\n"
    )
    # board-1.local does not resolve here; nginx -t resolves upstream names, so map it for the check.
    text = snippet.read_text().replace("board-1.local:52415", "127.0.0.1:52415")
    snippet.write_text(text)
    checked = subprocess.run(nginx_command(nginx_bin, tmp_path, main_conf, "-t"), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_check_reports_nginx_rejection(tmp_path, nginx_bin):
    """A name nginx cannot resolve is caught by --check before any file is written."""
    out = tmp_path / "exo-rkllm.conf"
    proc = run_cli("--node", "no-such-board.invalid:52415", "--check", "--output", str(out))
    assert proc.returncode == 2
    assert "nginx -t rejected the configuration" in proc.stderr
    assert "no-such-board.invalid" in proc.stderr
    assert not out.exists()


def test_balancer_answers_its_health_route_and_fails_fast_with_every_node_down(nginx_bin, tmp_path):
    """No node is running: nginx answers /balancer/health itself, and an API call gets a prompt 503."""
    dead = [Node(f"dead{i}", ["sim-instant"], tmp_path, port=free_port()) for i in range(3)]
    balancer = Balancer(dead, tmp_path / "nginx", nginx_bin, extra_args=["--client-max-body-size", "1k"])
    balancer.start()
    try:
        status, body, _ = http_get(balancer.url + "/balancer/health")
        assert status == 200
        health = json.loads(body)
        assert health["status"] == "ok"
        assert health["nodes"] == [node.address for node in dead]
        # refused connections are skipped at once; a hang would hit the client timeout and fail here
        status, body, headers = http_get(balancer.url + "/v1/models", timeout=20)
        assert status == 503, "no node available is reported like a full queue, so clients back off"
        assert json.loads(body)["error"]["code"] == "no_node_available"
        assert int(headers["Retry-After"]) > 0
        # every node was tried once before giving up
        tried = headers["X-RKLLM-Upstream"]
        assert all(node.address in tried for node in dead), tried
        # a body over the balancer's limit gets the OpenAI error body, not nginx's HTML page
        big = json.dumps({"model": "sim-instant", "messages": [{"role": "user", "content": "x" * 4096}]}).encode()
        req = urllib.request.Request(balancer.url + "/v1/chat/completions", data=big,
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=20)
        assert err.value.code == 413
        assert json.loads(err.value.read())["error"]["code"] == "request_too_large"
    finally:
        balancer.stop()
