#!/usr/bin/env bash
# Install everything talking-face needs on a fresh Debian machine, idempotently, at pinned versions:
#   1. the Debian packages in .ci/debian-packages.txt (festival voices for the built-in corpus), NAME=VERSION;
#   2. a virtual environment (.venv, or $VENV) with pip and setuptools at the lock's versions;
#   3. torch, pinned by $TORCH (default: the CPU wheel torch==2.13.0; a GPU machine sets TORCH, see README),
#      in the same pip command as the project (editable, with its dev extras) and every other package at the
#      exact version in .ci/constraints.txt (`make lock` refreshes it), so an install never drifts.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH=${TORCH:-torch==2.13.0}
LOCK=.ci/constraints.txt

missing=()
while read -r pinned; do
  [[ -z "$pinned" || "$pinned" == \#* ]] && continue
  [[ "$(dpkg-query -W -f '${Version}' "${pinned%%=*}" 2>/dev/null)" == "${pinned#*=}" ]] || missing+=("$pinned")
done < .ci/debian-packages.txt
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$LOCK")
"${pip[@]}" pip setuptools
# shellcheck disable=SC2086  # $TORCH may carry pip options (an index URL)
"${pip[@]}" --no-build-isolation $TORCH -e ".[dev]"
echo "talking-face installed in $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
