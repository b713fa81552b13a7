"""`exo-rkllm serve` and `exo-rkllm run` as real subprocesses."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import openai
import pytest

from tests.server.conftest import client

CLI = [sys.executable, "-m", "exo_rkllm.cli"]


def env_without_runtime(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RKLLM_LIB_PATH", "NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env["LD_LIBRARY_PATH"] = str(tmp_path)  # nothing there
    return env


def test_serve_and_run_without_runtime_exit_nonzero_with_where_and_how(tmp_path):
    for argv in (["serve", "--port", "0"], ["serve", "--port", "0", "--model", "qwen2.5-1.5b-instruct"],
                 ["run", "qwen2.5-1.5b-instruct", "hello"]):
        p = subprocess.run(CLI + argv, capture_output=True, text=True, timeout=60, env=env_without_runtime(tmp_path))
        assert p.returncode != 0
        err = p.stderr
        assert "RKLLM runtime" in err and "--simulate" in err, err
        assert "librkllmrt.so" in err and "/" in err  # says where it looked
        assert "SIMULATED" not in err and "listening" not in err  # never falls back to the simulator


def test_serve_simulated_end_to_end_sd_notify_and_sigterm(tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock_path = os.path.join(tempfile.mkdtemp(prefix="exo-rkllm-"), "notify.sock")  # AF_UNIX: short path
    notify.bind(sock_path)
    notify.settimeout(30)
    env = {**env_without_runtime(tmp_path), "NOTIFY_SOCKET": sock_path,
           "WATCHDOG_USEC": "200000", "EXO_RKLLM_API_KEY": "env-key"}
    proc = subprocess.Popen(CLI + ["serve", "--simulate", "--port", "0", "--model", "sim-instant",
                                   "--temperature", "0.2", "--top-p", "0.9"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        out = "".join(lines)
        assert url, out
        assert "SIMULATED RUNTIME — no NPU" in out
        assert "sim-instant" in out  # load progress names the model
        hi = [{"role": "user", "content": "hi"}]
        with pytest.raises(openai.AuthenticationError):  # the key came from $EXO_RKLLM_API_KEY
            client(url).chat.completions.create(model="sim-instant", messages=hi)
        c = client(url, api_key="env-key")
        r = c.chat.completions.create(model="sim-instant", messages=hi, temperature=0.2, top_p=0.9)
        assert "simulated assistant" in r.choices[0].message.content
        with pytest.raises(openai.BadRequestError) as e:  # the card's 0.7 is not what --temperature loaded
            c.chat.completions.create(model="sim-instant", messages=hi, temperature=0.7)
        assert "temperature=0.2" in e.value.message
        messages = []
        while not any(m.startswith("WATCHDOG=1") for m in messages):
            messages.append(notify.recv(4096).decode())
        assert any("READY=1" in m for m in messages), messages  # systemd learns the models are loaded
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_rejects_bad_flags_and_unknown_models():
    p = subprocess.run(CLI + ["serve", "--simulate", "--model", "nope-model", "--port", "0"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "unknown model 'nope-model'" in p.stderr and "sim-instant" in p.stderr
    p = subprocess.run(CLI + ["serve", "--simulate", "--queue-depth", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--queue-depth" in p.stderr


def test_run_one_shot_streams_the_answer():
    p = subprocess.run(CLI + ["run", "sim-instant", "hello", "--simulate"], capture_output=True, text=True,
                       timeout=90)
    assert p.returncode == 0, p.stderr
    assert "simulated assistant" in p.stdout
    assert "SIMULATED" in p.stderr


def test_run_reasoning_model_keeps_thinking_off_stdout():
    p = subprocess.run(CLI + ["run", "sim-reasoning-instant", "hello", "--simulate"], capture_output=True,
                       text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith("Hello! I'm a simulated reasoning model")
    assert "The user greeted me" in p.stderr and "The user greeted me" not in p.stdout


def test_run_interactive_chat_keeps_the_conversation():
    p = subprocess.run(CLI + ["run", "sim-instant", "--simulate"], input="hi\nand then?\n/exit\n",
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    # the simulator answers by user-turn count: a second scripted reply proves the history was kept
    assert "simulated assistant" in p.stdout and "Good question" in p.stdout


@pytest.mark.parametrize("argv", [["run", "nope-model", "hi", "--simulate"], ["run", "sim-instant", "--max-tokens", "0",
                                                                              "--simulate"]])
def test_run_bad_input(argv):
    p = subprocess.run(CLI + argv, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "error" in p.stderr


def test_serve_on_a_busy_port_fails_before_loading_models():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run(CLI + ["serve", "--simulate", "--model", "sim-instant", "--port", str(port)],
                           capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and f"127.0.0.1:{port}" in p.stderr and "--port" in p.stderr
    assert "loading" not in p.stderr


def test_sigterm_ends_requests_in_flight_with_their_error_not_a_cut_connection(tmp_path):
    import json
    import threading
    import urllib.request

    env = {**env_without_runtime(tmp_path), "RKLLM_SIM_LOAD_MS": "0"}
    proc = subprocess.Popen(CLI + ["serve", "--simulate", "--port", "0", "--model", "sim-qwen2.5-1.5b"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        while url is None:
            line = proc.stderr.readline()
            assert line, "serve exited before listening"
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        results: dict[str, object] = {}

        def call(name: str, stream: bool) -> None:
            body = {"model": "sim-qwen2.5-1.5b", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    results[name] = (resp.status, resp.read().decode())
            except urllib.error.HTTPError as exc:
                results[name] = (exc.code, exc.read().decode())

        streaming = threading.Thread(target=call, args=("streaming", True))
        streaming.start()
        time.sleep(1.0)  # it is generating (61 ms per token)
        queued = threading.Thread(target=call, args=("queued", False))
        queued.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        streaming.join(30)
        queued.join(30)
        assert proc.wait(timeout=30) == 0
        status, text = results["streaming"]
        events = [e for e in text.split("\n\n") if e]
        assert status == 200 and events[-1] == "data: [DONE]"
        assert json.loads(events[-2][6:])["error"]["code"] == "shutting_down"
        status, text = results["queued"]
        assert status == 503 and json.loads(text)["error"]["message"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
