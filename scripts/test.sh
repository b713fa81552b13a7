#!/usr/bin/env bash
# One command from a fresh machine to the whole test suite: installs the Debian packages the tests
# drive for real (gcc, nginx, promtool, systemd-analyze), exo-rkllm with its test extras into ./.venv,
# builds the C simulator, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
EXO_RKLLM_EXTRAS=test source scripts/setup.sh
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx-light
command -v promtool >/dev/null || apt_install prometheus
command -v systemd-analyze >/dev/null || apt_install systemd
.venv/bin/exo-rkllm sim build
exec .venv/bin/python -m pytest "$@"
