"""``python -m engines.s3``: run the action of DART_ACTION_ID, or ``register --api-url URL --token key:secret``."""

import sys

from engines.runner import main
from engines.s3.definition import NAME, s3_engine
from engines.s3.engine import HANDLER

if __name__ == "__main__":
    sys.exit(main("python -m engines.s3", NAME, HANDLER, s3_engine))
