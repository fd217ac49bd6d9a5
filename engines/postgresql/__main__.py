"""``python -m engines.postgresql``: run the action of DART_ACTION_ID, or ``register --api-url URL --token
key:secret``."""

import sys

from engines.postgresql.definition import NAME, postgresql_engine
from engines.postgresql.engine import HANDLER
from engines.runner import main

if __name__ == "__main__":
    sys.exit(main("python -m engines.postgresql", NAME, HANDLER, postgresql_engine))
