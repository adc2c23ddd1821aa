"""The one exception type for user mistakes (bad paths, flags, inputs)."""


class UserError(Exception):
    """A mistake the user can fix. The message is one line naming the file or value and the fix."""
