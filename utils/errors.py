"""The project's user-facing errors and the one-line messages the command-line tools print."""
import argparse
import math
import sys


class UserError(Exception):
    """Base of every error the user can fix (a config, file, key or value), with a one-line message
    naming it, that the CLIs print as `<tool>: error: <message>` (exit code 2); others are bugs."""


def first_line(err):
    """'ErrorType: first line of its message' (just the type when there is no message); for an error that a
    DataLoader worker re-raised ('Caught ... in DataLoader worker process', a traceback), the original error's."""
    text = str(err).strip().splitlines()
    if len(text) > 2 and text[0].startswith('Caught ') and text[1].startswith('Original Traceback'):
        name, _, msg = text[-1].strip().partition(': ')
        return f"{name.rsplit('.', 1)[-1]}: {msg}"  # the traceback names the type with its module
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def message(err):
    """The message of a one-line project error without its type (what the CLIs print)."""
    return first_line(err).removeprefix(type(err).__name__ + ': ')


def exit_on_user_error(prog, work, *args):
    """work(*args); a UserError ends the program with `prog: error: <message>` and exit code 2."""
    try:
        return work(*args)
    except UserError as e:
        print(f"{prog}: error: {message(e)}", file=sys.stderr)
        sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are the CLIs' one line, `prog: error: <message>`, exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def number_arg(minimum, strict=False, kind=float):
    """An argparse type: a finite number (`kind` float or int) >= minimum (> with `strict`)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > minimum if strict else value >= minimum)):
            raise argparse.ArgumentTypeError(f"{text!r}: expected a {'whole ' if kind is int else ''}number "
                                             f"{'>' if strict else '>='} {minimum:g}")
        return value
    return parse
