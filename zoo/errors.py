"""The one exception type users see."""


class ZooError(Exception):
    """A problem the user can fix; the message says what went wrong, where, and what to do."""
