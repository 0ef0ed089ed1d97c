#!/usr/bin/env bash
# Refresh .ci/constraints.txt, the exact versions every install uses (`make lock`, then review the diff and
# run `make test`): resolve pyproject.toml's ranges in a throwaway venv and freeze what pip chose. torch is
# left out: install.sh pins it by $TORCH (the CPU wheel here, a CUDA build on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${TORCH:-torch==2.13.0}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --upgrade pip setuptools
# shellcheck disable=SC2086  # $TORCH may carry pip options (an index URL)
"$scratch/venv/bin/python" -m pip install -q $TORCH -e ".[dev]"
{
  echo "# Exact versions for .ci/install.sh, made by \`make lock\` ($(date -u +%F), $(python3 --version))."
  echo "# pyproject.toml keeps the ranges a user's own environment may take; torch is pinned by install.sh."
  "$scratch/venv/bin/python" -m pip freeze --all --exclude-editable |
    grep -viE '^(torch|nvidia-[a-z0-9-]+|triton|talking-face)==' | LC_ALL=C sort -f
} > "$scratch/constraints.txt"
mv "$scratch/constraints.txt" .ci/constraints.txt
echo "wrote .ci/constraints.txt ($(grep -vc '^#' .ci/constraints.txt) packages)"
