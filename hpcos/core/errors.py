"""Errors a user can act on.  The CLI prints them as one line each and exits 2, never a traceback."""


class UserError(Exception):
    """A mistake in input, configuration or environment, with a message that says what to change."""

    exit_code = 2
