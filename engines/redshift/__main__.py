"""``python -m engines.redshift``: run the action of DART_ACTION_ID, or ``register --api-url URL --token
key:secret``."""

import sys

from engines.redshift.definition import NAME, redshift_engine
from engines.redshift.engine import HANDLER
from engines.runner import main

if __name__ == "__main__":
    sys.exit(main("python -m engines.redshift", NAME, HANDLER, redshift_engine))
