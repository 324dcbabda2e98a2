"""Every value a user can set, with what it may be: one definition for the app's sliders, the
app's API checks and the command line's number checks (docs/app.md lists them).

    ITERATIONS.check(value)           -> an int in 1..16, or an InputError naming the range
    RESOLUTION.narrowed(maximum=512)  -> an operator's tighter limit (never a wider one)
    check_choice("engine", value, ENGINES), check_flag("oil_paint_exemplar", value)

Values arrive from JSON, argparse or Python: booleans, strings, NaN, infinities and huge
integers are refused here, before anything else sees them. Messages name the allowed range
and never echo more than a short prefix of what was given.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

from core.errors import InputError
from core.vocabulary import shown, unknown

MAX_TEXT = 200  # longest name (checkpoint, task, engine) a client may send


@dataclass(frozen=True)
class Limit:
    """A number a user sets: its range, whether it is whole, its default and its slider step."""

    name: str  # as the API and the CLI call it
    minimum: float
    maximum: float
    integer: bool = False
    default: float | None = None  # None: the engine's / model's own value
    step: float | None = None  # the UI slider's step
    meaning: str = ""  # one line for the docs

    def check(self, value: object) -> int | float:
        """``value`` as an int (``integer``) or float within [minimum, maximum]; else InputError."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            kind = "a whole number" if self.integer else "a number"
            raise InputError(f"{self.name} must be {kind} from {self.describe()}; got {shown(value)}.")
        if isinstance(value, numbers.Integral):
            number: int | float = int(value)
        else:
            number = float(value)
            if not math.isfinite(number):
                raise InputError(f"{self.name} must be a finite number from {self.describe()}; got {number}.")
            if self.integer:
                if number != int(number):
                    raise InputError(f"{self.name} must be a whole number from {self.describe()}; got {number}.")
                number = int(number)
        if not self.minimum <= number <= self.maximum:
            raise InputError(f"{self.name} {shown(number)} is out of range: use {self.describe()}.")
        return number if self.integer else float(number)

    def check_optional(self, value: object) -> int | float | None:
        """Like ``check``, with None meaning "the default" (returned as ``self.default``)."""
        return self.default if value is None else self.check(value)

    def narrowed(self, minimum: float | None = None, maximum: float | None = None, **changes) -> Limit:
        """The same limit, tightened by an operator's setting (a wider value is ignored)."""
        low = self.minimum if minimum is None else max(self.minimum, minimum)
        high = self.maximum if maximum is None else min(self.maximum, maximum)
        if low > high:
            raise ValueError(f"{self.name}: {low}..{high} is an empty range")
        return replace(self, minimum=low, maximum=high, **changes)

    def describe(self) -> str:
        return f"{_number(self.minimum)} to {_number(self.maximum)}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_choice(name: str, value: object, choices: tuple[str, ...] | list[str]) -> str:
    """``value`` when it is one of ``choices`` (exact string); else InputError listing them."""
    if not isinstance(value, str) or len(value) > MAX_TEXT or value not in choices:
        raise InputError(unknown(name, value, choices))
    return value


def check_flag(name: str, value: object) -> bool:
    """A true/false switch: only booleans (None counts as False)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false; got {shown(value)}.")
    return value


# -- the limits ---------------------------------------------------------------------------------
# The command line accepts these full ranges; the app may narrow them (app/settings.py), never widen.

RESOLUTION = Limit("resolution", 64, 2048, integer=True, default=None, step=32,
                   meaning="output side in pixels (rounded down to the model's stride)")
ITERATIONS = Limit("iterations", 0, 50, integer=True, default=None, step=1,
                   meaning="PatchMatch iterations per level (default: the model's, or 2 training-free)")
TEMPERATURE = Limit("temperature", 0.001, 0.1, default=None, step=0.001,
                    meaning="softmax temperature of the matching (default 0.01)")
SEED = Limit("seed", 0, 2**32 - 1, integer=True, default=0, meaning="seed of the propagation orders")
BATCH_SIZE = Limit("batch_size", 1, 64, integer=True, default=1, meaning="pairs run together (CLI folder mode)")
