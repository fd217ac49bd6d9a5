#!/usr/bin/env bash
# Runs dart from this checkout. On first use (and whenever setup.cfg changes) it creates .venv and installs
# dart with its pinned dependencies there. `./dart test` runs the whole test suite; anything else is passed
# to the `dart` command (`./dart up`, `./dart events tail -f`, `./dart projections status` ...).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.installed-$(sha1sum "$here/setup.cfg" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "dart: needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2; exit 1; }
  echo "dart: installing into $venv (first run, about a minute)" >&2
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here[test,bench,sandbox]" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
if [ "${1:-}" = "test" ]; then
  shift
  exec "$venv/bin/python" "$here/tests/run.py" "$@"
fi
if [ "${1:-}" = "lint" ]; then
  # The layers (import-linter contracts in setup.cfg), lint and types over the packages.
  cd "$here"
  "$venv/bin/lint-imports"
  "$venv/bin/ruff" check services events projections engines
  exec "$venv/bin/mypy" services events projections engines
fi
if [ "${1:-}" = "bench" ]; then
  shift
  cd "$here"
  exec "$venv/bin/python" -m bench.store_bench "$@"
fi
exec "$venv/bin/dart" "$@"
