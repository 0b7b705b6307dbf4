#!/usr/bin/env bash
# Idempotent set-up, sourced by scripts/demo.sh and scripts/test.sh.
#   setup_apt PKG...      apt-get install only what is missing (as root; uses sudo otherwise)
#   setup_venv EXTRAS     .venv with torch==2.13.0 (CPU, when the extras need it) and agentkit[EXTRAS]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AGENTKIT_VENV:-$REPO/.venv}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

setup_apt() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "+ apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_venv() {
  local extras="$1"
  if ! [ -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || { setup_apt python3-venv python3-pip; python3 -m venv "$VENV"; }
  fi
  local pip=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
  case ",$extras," in
    *,vlm,*|*,all,*|*,dev,*)
      # Pinned: this version's CPU wheel is on disk here; an unpinned torch would pull a multi-GB CUDA build.
      "$VENV/bin/python" -c "import torch" 2>/dev/null || "${pip[@]}" install "torch==2.13.0" ;;
  esac
  "${pip[@]}" install -e "$REPO[$extras]"
  export PATH="$VENV/bin:$PATH"
}
