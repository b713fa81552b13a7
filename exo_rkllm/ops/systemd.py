"""systemd units for a board that must come back by itself after a reboot, and their installer.

The unit text lives here (so `exo-rkllm systemd install` works from a wheel); ``systemd/`` in the
repository holds the same files rendered for /usr/local/bin/exo-rkllm (a test keeps them equal).

Hardening is as tight as NPU access allows: the NPU is a device node (/dev/dri/renderD129 on the
DRM rknpu driver, /dev/rknpu on older ones), so PrivateDevices= cannot be used; DeviceAllow= opens
exactly those. MemoryDenyWriteExecute= is left off: ctypes callbacks (the token callback the
runtime calls) need libffi closures, which write executable memory on some platforms.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DEFAULT_EXE = "/usr/local/bin/exo-rkllm"
UNIT_DIR = Path("/etc/systemd/system")
ENV_FILE = Path("/etc/default/exo-rkllm")
NODE_UNIT = "exo-rkllm.service"
EXO_UNIT = "exo-rkllm-exo.service"

_HARDENING = """\
# --- hardening (as tight as NPU access allows; `systemd-analyze security exo-rkllm` scores it)
DynamicUser=yes
SupplementaryGroups=render video
StateDirectory={state}
StateDirectoryMode=0750
CacheDirectory={state}
UMask=0027
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies={families}
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
AmbientCapabilities=
# The NPU: only its device nodes (rknpu DRM render node, legacy misc node, DMA heaps it allocates from).
DevicePolicy=closed
DeviceAllow=/dev/dri/renderD129 rw
DeviceAllow=/dev/rknpu rw
DeviceAllow=char-dma_heap rw
"""

NODE_TEMPLATE = """\
# exo-rkllm node: OpenAI-compatible API over the RK3588 NPU (`exo-rkllm serve`).
# Settings: /etc/default/exo-rkllm. Installed by `exo-rkllm systemd install`.
[Unit]
Description=exo-rkllm node (OpenAI-compatible LLM server on the RK3588 NPU)
Documentation=https://github.com/airockchip/rknn-llm
After=network-online.target
Wants=network-online.target
Conflicts={exo_unit}

[Service]
Type=notify
NotifyAccess=main
Environment=EXO_RKLLM_HOST=127.0.0.1
Environment=EXO_RKLLM_PORT=52415
Environment=EXO_RKLLM_SERVE_ARGS=
Environment=EXO_RKLLM_MODELS_DIR=/var/lib/exo-rkllm/models
Environment=HF_HOME=/var/lib/exo-rkllm/huggingface
Environment=HF_HUB_OFFLINE=1
Environment=XDG_CACHE_HOME=/var/cache/exo-rkllm
EnvironmentFile=-{env_file}
# Pin NPU/CPU/DDR frequencies first ('+': runs as root outside the sandbox; '-': a board without
# frequency controls still starts, and the journal says why it was not pinned).
ExecStartPre=-+{exe} tune
ExecStart={exe} serve --host ${{EXO_RKLLM_HOST}} --port ${{EXO_RKLLM_PORT}} $EXO_RKLLM_SERVE_ARGS
# READY=1 comes once the models are loaded (a 1.8B model can take a minute from slow storage).
TimeoutStartSec=900
# The server sends WATCHDOG=1 every WatchdogSec/2 while its event loop runs.
WatchdogSec=60
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
StandardOutput=journal
StandardError=journal
SyslogIdentifier=exo-rkllm
{hardening}
[Install]
WantedBy=multi-user.target
"""

EXO_TEMPLATE = """\
# exo-rkllm in exo mode: legacy exo (v0.0.15-alpha) with the RKLLM inference engine (`exo-rkllm exo`).
# Settings: /etc/default/exo-rkllm (EXO_RKLLM_EXO_ARGS). Installed by `exo-rkllm systemd install --exo`.
[Unit]
Description=exo-rkllm in exo mode (exo cluster node on the RK3588 NPU)
Documentation=https://github.com/exo-explore/exo/tree/v0.0.15-alpha
After=network-online.target
Wants=network-online.target
Conflicts={node_unit}

[Service]
# exo does not speak sd_notify: started = running (no watchdog for this unit).
Type=exec
Environment=EXO_RKLLM_EXO_ARGS=
Environment=EXO_RKLLM_MODELS_DIR=/var/lib/exo-rkllm-exo/models
Environment=HF_HOME=/var/lib/exo-rkllm-exo/huggingface
Environment=HOME=/var/lib/exo-rkllm-exo
Environment=XDG_CACHE_HOME=/var/cache/exo-rkllm-exo
EnvironmentFile=-{env_file}
ExecStartPre=-+{exe} tune
ExecStart={exe} exo $EXO_RKLLM_EXO_ARGS
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
StandardOutput=journal
StandardError=journal
SyslogIdentifier=exo-rkllm-exo
{hardening}
[Install]
WantedBy=multi-user.target
"""

ENV_TEMPLATE = """\
# /etc/default/exo-rkllm: settings of exo-rkllm.service and exo-rkllm-exo.service.
# After editing: systemctl restart exo-rkllm
#
# Listen on the network (behind the balancer) instead of this machine only; then set an API key.
#EXO_RKLLM_HOST=0.0.0.0
#EXO_RKLLM_PORT=52415
#EXO_RKLLM_API_KEY=change-me
# Models to load (ids from `exo-rkllm models list`) and other `exo-rkllm serve` flags:
EXO_RKLLM_SERVE_ARGS=--model qwen2.5-1.5b-instruct
# Where models live (pull as root with the same setting: see docs/deployment.md):
#EXO_RKLLM_MODELS_DIR=/var/lib/exo-rkllm/models
#HF_HOME=/var/lib/exo-rkllm/huggingface
# The runtime library, when not in /usr/lib:
#RKLLM_LIB_PATH=/usr/lib/librkllmrt.so
# exo mode (exo-rkllm-exo.service): flags passed to exo
#EXO_RKLLM_EXO_ARGS=--inference-engine rkllm
"""


class InstallError(RuntimeError):
    pass


def render(exe: str = DEFAULT_EXE, env_file: Path = ENV_FILE) -> dict[str, str]:
    """{file name: text} of both units for the given exo-rkllm executable."""
    if not os.path.isabs(exe) or any(c.isspace() for c in exe):
        raise InstallError(f"ExecStart needs an absolute path without spaces, got {exe!r}")
    node = NODE_TEMPLATE.format(exe=exe, env_file=env_file, exo_unit=EXO_UNIT,
                                hardening=_HARDENING.format(state="exo-rkllm",
                                                            families="AF_UNIX AF_INET AF_INET6"))
    exo = EXO_TEMPLATE.format(exe=exe, env_file=env_file, node_unit=NODE_UNIT,
                              hardening=_HARDENING.format(state="exo-rkllm-exo",
                                                          families="AF_UNIX AF_INET AF_INET6 AF_NETLINK"))
    return {NODE_UNIT: node, EXO_UNIT: exo}


def find_executable() -> str:
    """The installed `exo-rkllm` script: next to this Python first (a venv), then $PATH."""
    beside = Path(sys.executable).parent / "exo-rkllm"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("exo-rkllm")
    if found:
        return str(Path(found).absolute())
    raise InstallError("the exo-rkllm command is not installed as a script (pip install exo-rkllm puts it in "
                       "bin/); pass --exe /path/to/exo-rkllm")


@dataclass
class Action:
    what: str
    detail: str


def install(*, exe: str | None = None, unit_dir: Path = UNIT_DIR, env_file: Path = ENV_FILE, exo_mode: bool = False,
            enable: bool = True, dry_run: bool = False,
            run: Callable[[list[str]], int] | None = None) -> list[Action]:
    """Write both units (and the env file if absent), daemon-reload, enable the chosen one."""
    exe = exe or find_executable()
    units = render(exe, env_file)
    actions: list[Action] = []
    for name, text in units.items():
        actions.append(Action("write", f"{unit_dir / name}"))
        if not dry_run:
            _atomic_write(unit_dir / name, text, 0o644)
    if env_file.exists():
        actions.append(Action("keep", f"{env_file} (exists; not overwritten)"))
    else:
        actions.append(Action("write", f"{env_file}"))
        if not dry_run:
            _atomic_write(env_file, ENV_TEMPLATE, 0o640)
    wanted = EXO_UNIT if exo_mode else NODE_UNIT
    commands = [["systemctl", "daemon-reload"]]
    if enable:
        commands.append(["systemctl", "enable", wanted])
    for cmd in commands:
        actions.append(Action("run", " ".join(cmd)))
        if dry_run:
            continue
        runner = run or (lambda c: subprocess.run(c, check=False).returncode)
        try:
            rc = runner(cmd)
        except OSError as exc:
            raise InstallError(f"cannot run {' '.join(cmd)}: {exc}; is this a systemd system?") from None
        if rc != 0:
            raise InstallError(f"`{' '.join(cmd)}` failed with exit code {rc}")
    if enable:
        actions.append(Action("next", f"systemctl start {wanted}; journalctl -u {wanted} -f"))
    return actions


def _atomic_write(path: Path, text: str, mode: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except PermissionError:
        raise InstallError(f"cannot write {path}: permission denied; run `sudo exo-rkllm systemd install` "
                           f"(or --dry-run to see what it would do)") from None
    except OSError as exc:
        raise InstallError(f"cannot write {path}: {exc.strerror or exc}") from None
