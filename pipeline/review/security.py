"""Who may use the workbench, and what is kept of what they looked at.

- **Accounts** (``HOME/review/users.json``): a name and an scrypt hash of the password
  (``hashlib.scrypt``, a random salt each, the cost parameters stored beside the hash). With no
  account the workbench serves 127.0.0.1 only, to whoever is logged in on the machine; once an
  account exists every page asks to log in, and only then may it listen on another address.
- **CSRF**: every state-changing request carries the session's token (:func:`csrf_token`,
  checked by :func:`check_csrf`); the session cookie is HttpOnly and SameSite=Strict.
- **Access log** (``HOME/review/access.log``, JSON lines): who opened which person's history,
  by the person's pseudonym (``petitioner_key``), never by what was typed.
"""
import datetime as dt
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from pipeline.errors import PetitionError

REVIEW_DIR = "review"
USERS_FILE, ACCESS_LOG = "users.json", "access.log"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# scrypt costs (RFC 7914; OWASP's minimum is N=2**17, r=8, p=1): about 0.1 s and 128 MiB a check
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
USER_NAME = re.compile(r"^[\w.@-]{1,64}$")
MIN_PASSWORD = 8


def review_dir(home):
    return Path(home) / REVIEW_DIR


def _hash(password, salt, n, r, p):
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


class Accounts:
    """The accounts file of a home (``HOME/review/users.json``)."""

    def __init__(self, home):
        self.path = review_dir(home) / USERS_FILE

    def users(self):
        """{name: stored hash record}; empty when there is no file."""
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PetitionError(f"{self.path}: unreadable accounts file ({exc})") from None

    def add(self, name, password):
        """Add or replace the account ``name`` with ``password`` (at least ``MIN_PASSWORD`` characters)."""
        if not USER_NAME.match(name or ""):
            raise PetitionError(f"user name {name!r}: use 1-64 letters, digits, '.', '-', '_' or '@'")
        if len(password) < MIN_PASSWORD:
            raise PetitionError(f"password too short: at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        users = self.users()
        users[name] = {"salt": salt.hex(), **SCRYPT, "hash": _hash(password, salt, **SCRYPT).hex()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(users, handle, indent=1)
        os.replace(tmp, self.path)

    def check(self, name, password):
        """True when ``password`` is ``name``'s (compared in constant time)."""
        record = self.users().get(name)
        if record is None:
            _hash(password, b"0" * 16, **SCRYPT)  # as slow as a real check: names cannot be probed by timing
            return False
        expected = bytes.fromhex(record["hash"])
        return hmac.compare_digest(_hash(password, bytes.fromhex(record["salt"]), record["n"], record["r"],
                                         record["p"]), expected)


def check_bind(host, accounts):
    """Refuse (``PetitionError``, one line) to listen on ``host`` beyond this machine without accounts."""
    if host not in LOCAL_HOSTS and not accounts.users():
        raise PetitionError(f"review: listening on {host} shows personal data to the network and needs accounts: "
                            f"add one with `petition review add-user NAME` (or use --host 127.0.0.1)")


def csrf_token(session):
    """The session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf(session, sent):
    """True when ``sent`` is the session's token."""
    expected = session.get("csrf")
    return bool(expected and sent) and hmac.compare_digest(str(expected), str(sent))


def local_user():
    """Who decides when there are no accounts: the login name."""
    return getpass.getuser()


def log_access(home, *, user, remote, keys, bases, letters):
    """Append who opened which person's history (pseudonyms and key bases only) to the access log."""
    path = review_dir(home) / ACCESS_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"at": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "user": user, "remote": remote,
             "page": "person_history", "petitioner_keys": sorted(keys), "typed": sorted(bases), "letters": letters}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return entry


def read_access_log(home):
    """Every entry of the access log, oldest first."""
    path = review_dir(home) / ACCESS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
