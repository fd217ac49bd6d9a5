"""``python -m engines.emr``: run the action of DART_ACTION_ID, or ``register --api-url URL --token key:secret``."""

import sys

from engines.emr.definition import NAME, emr_engine
from engines.emr.engine import HANDLER
from engines.runner import main

if __name__ == "__main__":
    sys.exit(main("python -m engines.emr", NAME, HANDLER, emr_engine))
