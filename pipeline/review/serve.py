"""``petition review``: serve the workbench, add an account."""
import getpass
import sys

from pipeline.errors import PetitionError
from pipeline.review import security


def serve_command(config, *, home, host="127.0.0.1", port=8765, pairs=None, config_file=None):
    """``petition review --home HOME``: check the bind, build the app, serve it until interrupted."""
    from werkzeug.serving import run_simple

    from pipeline.review.app import create_app

    security.check_bind(host, security.Accounts(home))
    app = create_app(home, config, pairs=pairs, config_file=config_file)
    # a home without a finished run: one line now, not on the first page; and no page waits for jieba
    app.extensions["workbench"].warm()
    print(f"review: http://{host}:{port}/ over {home} (Ctrl-C stops)", file=sys.stderr)
    run_simple(host, port, app, threaded=True)


def add_user_command(*, home, name, password=None):
    """``petition review add-user NAME``: ask for the password twice (unless given) and store its hash."""
    if password is None:
        password = getpass.getpass(f"password for {name}: ")
        if password != getpass.getpass("again: "):
            raise PetitionError("the two passwords differ; nothing changed")
    security.Accounts(home).add(name, password)
    print(f"review: account {name} saved in {security.Accounts(home).path}")
