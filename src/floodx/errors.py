"""Errors a user can fix: each message names the file and line, the field or the config key."""

import sys


class FloodxError(ValueError):
    """Base class for user-facing errors (bad config, bad data, missing resource)."""


class ConfigError(FloodxError):
    pass


class DataError(FloodxError):
    pass


class ResourceError(FloodxError):
    pass


def run_main(func, argv=None):
    """Run a stage's entry point; user errors become one clear line and exit status 2."""
    try:
        return func(argv)
    except FloodxError as err:
        print(f"floodx: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
