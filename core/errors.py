"""Errors with a message meant for the user (CLI prints it, the app shows it)."""


class WarpaintError(Exception):
    """Base class: the message says what went wrong and what to do."""


class InputError(WarpaintError):
    """The user's image or file cannot be used (corrupt, too large, not an image...)."""


class NoSubjectError(WarpaintError):
    """No person / face / subject was found where one is needed."""


class CheckpointError(WarpaintError):
    """A checkpoint is missing, the wrong file, truncated or does not fit the model."""
