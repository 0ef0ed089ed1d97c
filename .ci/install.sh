#!/usr/bin/env bash
# Install everything talking-face needs on a fresh Debian machine, idempotently:
#   1. Debian packages listed in .ci/debian-packages.txt (festival voices for the built-in corpus);
#   2. a virtual environment (.venv, or $VENV) with torch pinned in the SAME pip command as the rest,
#      so pip never swaps in another torch build; $TORCH picks the build (default: the CPU wheel
#      torch==2.13.0; on a CUDA machine use TORCH=torch, see README);
#   3. the project itself, editable, with its dev extras (pytest, nbmake, jupyterlab, ruff).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH=${TORCH:-torch==2.13.0}

missing=()
while read -r package; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done < .ci/debian-packages.txt
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# shellcheck disable=SC2086  # $TORCH may carry pip options (an index URL)
"$VENV/bin/python" -m pip install -q $TORCH -e ".[dev]"
echo "talking-face installed in $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
