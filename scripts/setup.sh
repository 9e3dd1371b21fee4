#!/usr/bin/env bash
# Set up a virtual environment in .venv with napari-deepreg and its test tools.
# torch==2.13.0 is installed first: a bare `torch` requirement would pull the CUDA build.
# Usage: bash scripts/setup.sh [extra,...]   (default extra: testing)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-testing}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[${extras}]"

# GUI tests need a virtual X server with OpenGL; install it when we can (root + apt).
if [ "${extras}" != "" ] && ! command -v Xvfb >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth libgl1 libglx-mesa0 \
      libgl1-mesa-dri libegl1 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 libxcb-cursor0 \
      libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
      libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 >/dev/null
  else
    echo "note: Xvfb is missing; install it (see README) to run the GUI tests" >&2
  fi
fi
