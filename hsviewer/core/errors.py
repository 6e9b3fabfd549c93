"""The one exception type whose message is meant for the user."""


class HsviewerError(Exception):
    """Bad input or an unusable model: the message is shown as is, without a traceback."""


class StreamStopped(Exception):
    """A streamed pass (core/streaming.py) stopped at its next module's read because a cancel was asked for."""
