"""The no_op engine (reference §12.1): sleeps, then succeeds or fails as its action type says; dart's own
tests drive workflows with it. `definition` holds what it registers."""

from engines.no_op.definition import NO_OP_ENGINE

__all__ = ["NO_OP_ENGINE"]
