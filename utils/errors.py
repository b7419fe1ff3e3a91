"""Turning exceptions into the one-line messages the command-line tools print."""


def first_line(err):
    """'ErrorType: first line of its message' (just the type when there is no message)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
