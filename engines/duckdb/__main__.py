"""``python -m engines.duckdb``: run the action of DART_ACTION_ID, or ``register --api-url URL --token
key:secret``."""

import sys

from engines.duckdb.definition import NAME, duckdb_engine
from engines.duckdb.engine import HANDLER
from engines.runner import main

if __name__ == "__main__":
    sys.exit(main("python -m engines.duckdb", NAME, HANDLER, duckdb_engine))
