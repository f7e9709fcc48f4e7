#!/usr/bin/env bash
# Install llm-engine (Loom's local model engine) as a systemd service, or remove it.
#
#   install.sh [--wheelhouse DIR] [--python PY] [--root DIR] [--no-start]
#   install.sh --uninstall [--purge] [--root DIR]
#
# Idempotent: run it again to upgrade the package from the wheelhouse; an existing
# /etc/llm-engine/config.toml is never overwritten. It creates:
#   user and group  llm-engine (system, no login, home /var/lib/llm-engine)
#   /opt/llm-engine/venv                    the virtualenv (`pip install loom-inference`)
#   /etc/llm-engine/config.toml             the config (only if absent)
#   /etc/systemd/system/llm-engine.service  the unit, enabled and started
# The wheelhouse comes from `make wheelhouse` in a Loom checkout (loom-common and loom-protos
# are on no package index); loom-inference's other dependencies come from PyPI.
# --root DIR installs into DIR as if it were / (packaging, tests): no user is created and
# systemctl is not run there. --uninstall keeps the config and the models unless --purge.
# LLM_ENGINE_PIP_OPTS adds options to pip install (e.g. a mirror, or --no-index).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="/"
WHEELHOUSE="$HERE/../../dist/wheelhouse"
PYTHON="python3"
START=1
ACTION=install
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="$2"; shift 2 ;;
    --wheelhouse) WHEELHOUSE="$2"; shift 2 ;;
    --python) PYTHON="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

R="${ROOT%/}"                      # "" for the real root
OPT="$R/opt/llm-engine"
ETC="$R/etc/llm-engine"
UNIT="$R/etc/systemd/system/llm-engine.service"
STATE="$R/var/lib/llm-engine"
real_root() { [ -z "$R" ]; }
have_systemd() { real_root && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }
say() { echo "llm-engine: $*"; }

if [ "$ACTION" = uninstall ]; then
  if have_systemd; then
    systemctl disable --now llm-engine.service 2>/dev/null || true
  fi
  rm -f "$UNIT"
  have_systemd && systemctl daemon-reload
  rm -rf "$OPT"
  say "removed the service and $OPT"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE"
    if real_root && id llm-engine >/dev/null 2>&1; then
      userdel llm-engine 2>/dev/null || true
    fi
    say "purged the config, the models and the user"
  else
    say "kept $ETC and $STATE (--purge removes them)"
  fi
  exit 0
fi

if [ "$(id -u)" != 0 ] && real_root; then
  echo "install.sh: run as root (it creates a user and a system service)" >&2
  exit 1
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "install.sh: $PYTHON is older than Python 3.11" >&2; exit 1; }
ls "$WHEELHOUSE"/loom_inference-*.whl >/dev/null 2>&1 || {
  echo "install.sh: no loom_inference wheel in $WHEELHOUSE (run \`make wheelhouse\` in a Loom checkout)" >&2
  exit 1; }

# 1. The service's own user: no login, no home of its own beyond the state directory.
if real_root; then
  if ! id llm-engine >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /var/lib/llm-engine \
      --shell /usr/sbin/nologin --comment "Loom llm-engine" llm-engine
    say "created user llm-engine"
  fi
else
  say "fake root $ROOT: user llm-engine not created"
fi

# 2. The virtualenv, upgraded in place from the wheelhouse.
mkdir -p "$OPT"
[ -x "$OPT/venv/bin/python" ] || "$PYTHON" -m venv "$OPT/venv"
# shellcheck disable=SC2086  # LLM_ENGINE_PIP_OPTS is a list of options
"$OPT/venv/bin/python" -m pip install -q --upgrade --find-links "$WHEELHOUSE" ${LLM_ENGINE_PIP_OPTS:-} \
  loom-inference loom-common loom-protos
cp "$HERE/../../docs/inference.md" "$OPT/README" 2>/dev/null || true
say "installed loom-inference into $OPT/venv"

# 3. The config, once: an operator's edits survive every later run.
mkdir -p "$ETC"
if [ ! -e "$ETC/config.toml" ]; then
  install -m 0640 "$HERE/config.toml" "$ETC/config.toml"
  real_root && chgrp llm-engine "$ETC/config.toml"
  say "wrote $ETC/config.toml"
else
  say "kept $ETC/config.toml"
fi

# 4. The unit: always the current one.
mkdir -p "$(dirname "$UNIT")"
install -m 0644 "$HERE/llm-engine.service" "$UNIT"
if have_systemd; then
  systemctl daemon-reload
  if [ "$START" = 1 ]; then
    systemctl enable llm-engine.service
    systemctl restart llm-engine.service
    say "started: systemctl status llm-engine; journalctl -u llm-engine"
  else
    systemctl enable llm-engine.service
  fi
else
  say "unit written to $UNIT (systemctl not run: $( real_root && echo 'systemd is not running' || echo 'fake root'))"
fi
