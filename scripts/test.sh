#!/usr/bin/env bash
# Install everything the test suite needs (Debian packages, torch CPU, every extra) and run it.
# Real parts only: Chromium from Debian, Xvfb, Mosquitto, MuJoCo (EGL/OSMesa), espeak-ng.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
setup_apt espeak-ng xvfb xdotool scrot chromium fonts-dejavu-core fonts-liberation mosquitto \
  libosmesa6 libegl1 libgl1 libgles2 libglib2.0-0 python3-tk openssl
setup_venv "all"
cd "$REPO"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 MUJOCO_GL="${MUJOCO_GL:-egl}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
ruff check agentkit policies envs tools benchmarks apps tests
mypy -p agentkit
lint-imports
set +e
python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
[ "$rc" = 5 ] && { echo "no tests collected"; exit 1; }
exit "$rc"
