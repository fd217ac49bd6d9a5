"""``python -m tests.ui.screenshots [folder]``: the documentation's screenshots (docs/ui.md), taken by the
browser tests themselves on a fresh `dart up`: the entity list, the graph, the Gantt timeline, time travel, a
form's refusal and the live log, written to ``folder`` (docs/ui by default). Run it through ./dart so the UI
is built first: ``./dart --help >/dev/null && .venv/bin/python -m tests.ui.screenshots`` or, the same,
``DART_UI_SCREENSHOTS=docs/ui ./dart test tests/ui``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else HERE.parents[1] / "docs" / "ui").resolve()
    os.environ["DART_UI_SCREENSHOTS"] = str(folder)
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(HERE)])
    if code == 0:
        print(f"screenshots in {folder}: {', '.join(sorted(p.name for p in folder.glob('*.png')))}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
