"""Errors users can act on. Each message is one line naming the file, row or key and what was expected.

The CLI prints a :class:`PalbenchError` without a traceback and exits with status 2.
"""


class PalbenchError(Exception):
    """Base class: a one-line, user-facing problem with the input."""


class ConfigError(PalbenchError, ValueError):
    """A parameter or option has a value outside what is accepted (unknown layer, c1 outside (0, 1], ...)."""


class DataError(PalbenchError):
    """A dataset file is missing, unreadable or not in the expected format."""


class WeightsError(PalbenchError):
    """A weights file is missing or does not fit the model."""
