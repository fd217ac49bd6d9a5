"""``python -m engines.dynamodb``: run the action of DART_ACTION_ID, or ``register --api-url URL --token
key:secret``."""

import sys

from engines.dynamodb.definition import NAME, dynamodb_engine
from engines.dynamodb.engine import HANDLER
from engines.runner import main

if __name__ == "__main__":
    sys.exit(main("python -m engines.dynamodb", NAME, HANDLER, dynamodb_engine))
