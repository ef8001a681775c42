"""The one error type for user mistakes, defined on the side that installs alone."""


class UserError(ValueError):
    """A mistake in what the user gave us: its message names the problem and the fix.

    CLIs print the message as one line to stderr and exit with status 2.
    """
