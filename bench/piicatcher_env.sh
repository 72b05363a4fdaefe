#!/usr/bin/env bash
# Creates .venv-piicatcher/ at the repository root: PIICatcher 0.21.2 for bench/scan_peers.py.
#
# PIICatcher accepts Python 3.8 to 3.10.8 and pins SQLAlchemy 1.3, so it cannot share the
# project's environment. The interpreter is $PIICATCHER_PYTHON, else the first of python3.10,
# python3.9, python3.8 on PATH or under pyenv whose version PIICatcher accepts. Every package
# is pinned in bench/piicatcher-requirements.txt and installed with --no-deps (see there for
# what is left out and why). Usage: `make bench-peers-env` or `bash bench/piicatcher_env.sh`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-piicatcher"
requirements="$root/bench/piicatcher-requirements.txt"

accepted() {  # PIICatcher's Requires-Python: >=3.8,<=3.10.8
    "$1" -c 'import sys; v = sys.version_info[:3]; sys.exit(not ((3, 8) <= v <= (3, 10, 8)))' \
        2>/dev/null
}

candidates=()
if [[ -n "${PIICATCHER_PYTHON:-}" ]]; then
    candidates+=("$PIICATCHER_PYTHON")
fi
for minor in 3.10 3.9 3.8; do
    if command -v "python$minor" >/dev/null; then
        candidates+=("$(command -v "python$minor")")
    fi
done
if command -v pyenv >/dev/null; then
    for found in "$(pyenv root)"/versions/3.{10,9,8}.*/bin/python; do
        [[ -x "$found" ]] && candidates+=("$found")
    done
fi

python=""
for candidate in "${candidates[@]}"; do
    if accepted "$candidate"; then
        python="$candidate"
        break
    fi
done
if [[ -z "$python" ]]; then
    echo "no Python between 3.8 and 3.10.8 (PIICatcher 0.21.2's bound) found;" \
        "set PIICATCHER_PYTHON to one" >&2
    exit 1
fi

echo "PIICatcher's environment: $venv, with $("$python" -V) ($python)"
"$python" -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --no-deps -r "$requirements"
"$venv/bin/python" -c 'import piicatcher.api, dbcat.api; print("piicatcher", __import__("importlib.metadata").metadata.version("piicatcher"), "installed")'
