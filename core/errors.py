"""Errors with a message meant for the user (CLI prints it, the app shows it)."""

from core.vocabulary import worded


class WarpaintError(Exception):
    """Base class: the message says what went wrong and what to do.

    A message may name the user's options as placeholders (``$choose_checkpoint``...,
    ``core.vocabulary.OPTION_WORDS``): ``str()`` words them for the command line,
    ``for_front_end("app")`` for the app.
    """

    def __str__(self) -> str:
        return self.for_front_end("cli")

    def for_front_end(self, front_end: str) -> str:
        return worded(super().__str__(), front_end)


class InputError(WarpaintError):
    """The user's image or file cannot be used (corrupt, too large, not an image...)."""


class NoSubjectError(WarpaintError):
    """No person / face / subject was found where one is needed."""


class CheckpointError(WarpaintError):
    """A checkpoint is missing, the wrong file, truncated or does not fit the model."""
