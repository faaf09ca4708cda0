"""Errors that Sluice reports to users.

:class:`SluiceError` and its subclasses carry a message that says what was
wrong and what to do; the runner never retries them, because running the
same step on the same bad input again cannot help.
"""


class SluiceError(Exception):
    """A problem the user can fix; the message names the file, row or field and what was expected."""


class DataError(SluiceError):
    """Input data is malformed, empty, or does not match what the step expects."""


class AnomaliesFound(SluiceError):
    """Validation found error-level anomalies and the pipeline does not allow them."""


class StepFailed(SluiceError):
    """A pipeline step failed; the message carries the step, the error and the log path."""
