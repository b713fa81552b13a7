"""The systemd units: verified by systemd-analyze, scored by `systemd-analyze security`, installed by the command."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from exo_rkllm.ops.systemd import (DEFAULT_EXE, ENV_TEMPLATE, EXO_UNIT, NODE_UNIT, InstallError, install, render)

from .helpers import run_cmd

REPO_SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")


def rendered_dir(tmp_path) -> Path:
    exe = shutil.which("exo-rkllm") or pytest.skip("exo-rkllm script not installed (pip install -e .)")
    d = tmp_path / "units"
    d.mkdir()
    for name, text in render(exe).items():
        (d / name).write_text(text)
    return d


def test_repo_unit_files_are_the_rendered_units():
    for name, text in render(DEFAULT_EXE).items():
        assert (REPO_SYSTEMD / name).read_text() == text, f"systemd/{name} is stale: regenerate from exo_rkllm.ops.systemd"
    assert (REPO_SYSTEMD / "exo-rkllm.env").read_text() == ENV_TEMPLATE


def test_units_have_the_required_settings():
    node = render(DEFAULT_EXE)[NODE_UNIT]
    for line in ("Type=notify", "WatchdogSec=60", "Restart=on-failure", "ExecStartPre=-+/usr/local/bin/exo-rkllm tune",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "DeviceAllow=/dev/dri/renderD129 rw", "DynamicUser=yes", "StateDirectory=exo-rkllm",
                 "EnvironmentFile=-/etc/default/exo-rkllm", "StandardOutput=journal"):
        assert line in node.splitlines(), line
    assert "ExecStart=/usr/local/bin/exo-rkllm serve " in node
    exo = render(DEFAULT_EXE)[EXO_UNIT]
    assert "ExecStart=/usr/local/bin/exo-rkllm exo $EXO_RKLLM_EXO_ARGS" in exo and "Conflicts=exo-rkllm.service" in exo
    with pytest.raises(InstallError, match="absolute path"):
        render("exo-rkllm")


@needs_analyze
def test_systemd_analyze_verify_every_unit(tmp_path):
    d = rendered_dir(tmp_path)
    for unit in sorted(d.glob("*.service")):
        res = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and unit.name not in res.stderr, res.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a unit whose ExecStart does not exist is rejected."""
    bad = tmp_path / "bad.service"
    bad.write_text(render(DEFAULT_EXE)[NODE_UNIT].replace(DEFAULT_EXE, "/nonexistent/exo-rkllm"))
    res = subprocess.run([ANALYZE, "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "/nonexistent/exo-rkllm is not executable" in res.stderr


@needs_analyze
def test_systemd_analyze_security_score(tmp_path, capsys):
    d = rendered_dir(tmp_path)
    for unit in sorted(d.glob("*.service")):
        res = subprocess.run([ANALYZE, "security", "--offline=true", str(unit)], capture_output=True, text=True,
                             timeout=60)
        if "--offline" in res.stderr and res.returncode != 0:
            pytest.skip(f"this systemd-analyze has no --offline (needs systemd >= 250): {res.stderr.strip()}")
        m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", res.stdout)
        assert m, res.stdout[-500:] + res.stderr
        with capsys.disabled():
            print(f"\nsystemd-analyze security {unit.name}: {m.group(1)} {m.group(2)}")
        assert float(m.group(1)) <= 3.0, f"{unit.name} hardening regressed: {m.group(0)}"


def test_install_writes_units_env_and_enables(tmp_path):
    ran = []
    actions = install(exe="/opt/venv/bin/exo-rkllm", unit_dir=tmp_path / "units", env_file=tmp_path / "default",
                      run=lambda cmd: ran.append(cmd) or 0)
    node = (tmp_path / "units" / NODE_UNIT).read_text()
    assert "ExecStart=/opt/venv/bin/exo-rkllm serve" in node
    assert (tmp_path / "units" / EXO_UNIT).exists() and (tmp_path / "default").read_text() == ENV_TEMPLATE
    assert ran == [["systemctl", "daemon-reload"], ["systemctl", "enable", NODE_UNIT]]
    # A second install keeps the admin's env file.
    (tmp_path / "default").write_text("EXO_RKLLM_SERVE_ARGS=--model qwen3-4b\n")
    install(exe="/opt/venv/bin/exo-rkllm", unit_dir=tmp_path / "units", env_file=tmp_path / "default", exo_mode=True,
            run=lambda cmd: ran.append(cmd) or 0)
    assert (tmp_path / "default").read_text() == "EXO_RKLLM_SERVE_ARGS=--model qwen3-4b\n"
    assert ran[-1] == ["systemctl", "enable", EXO_UNIT]


def test_install_failure_of_systemctl_is_reported(tmp_path):
    with pytest.raises(InstallError, match="daemon-reload.*exit code 1"):
        install(exe="/x/exo-rkllm", unit_dir=tmp_path, env_file=tmp_path / "env", run=lambda cmd: 1)


def test_cli_dry_run_changes_nothing(tmp_path):
    code, out, _ = run_cmd("systemd", ["systemd", "install", "--dry-run", "--exe", "/opt/bin/exo-rkllm",
                                       "--unit-dir", str(tmp_path / "u"), "--env-file", str(tmp_path / "env")])
    assert code == 0 and "would write" in out and "would run: systemctl enable exo-rkllm.service" in out
    assert "ExecStart=/opt/bin/exo-rkllm serve" in out
    assert not (tmp_path / "u").exists() and not (tmp_path / "env").exists()


def test_cli_unwritable_unit_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cmd("systemd", ["systemd", "install", "--exe", "/opt/bin/exo-rkllm", "--unit-dir",
                                       str(blocker / "units"), "--env-file", str(tmp_path / "env")])
    assert code == 1 and "cannot write" in err
