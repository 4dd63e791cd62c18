"""What every page needs from the running app: the home's ``Workbench`` and the handling of a
refused decision."""
import functools

from flask import abort, current_app

from pipeline.errors import PetitionError


def workbench():
    """The app's ``data.Workbench``."""
    return current_app.extensions["workbench"]


def decided(action):
    """Decorate a view that writes decisions: a ``PetitionError`` (a bad id, a contradiction the
    store refuses) is shown as a 400 page with its one line."""

    @functools.wraps(action)
    def wrapper(*args, **kwargs):
        try:
            return action(*args, **kwargs)
        except PetitionError as exc:
            abort(400, str(exc))
    return wrapper
