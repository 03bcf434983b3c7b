"""The one exception type for failures a user can cause and fix."""


class UserError(Exception):
    """Bad data, a bad flag, a missing checkpoint, a diverging run, ...

    The scripts print the message as one line on stderr and exit with ``exit_code``; no traceback.
    """

    exit_code = 1


class DataError(UserError):
    """MNIST files missing, malformed, corrupt, or not downloadable."""


class UsageError(UserError):
    """A flag the user must change: a missing device, an unusable --out-dir, --eval-only without a checkpoint."""

    exit_code = 2


class SigTerm(KeyboardInterrupt):
    """SIGTERM (what `timeout`, `kill` and batch schedulers send) while a run trains: raised by its handler
    (common/run.py) and handled as Ctrl-C is, with exit code 143."""
