"""The one exception type users see: the CLI prints its message as a one-line reason."""


class PetitionError(Exception):
    """A problem with the user's input, files or configuration (not a bug)."""
