"""Log in and out (only when the home has accounts: ``petition review add-user NAME``)."""
from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

blueprint = Blueprint("account", __name__)


def _safe_next(target):
    """A path on this site to go back to after logging in (never another host)."""
    return target if target.startswith("/") and not target.startswith("//") else url_for("tonight.index")


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    accounts = current_app.extensions["accounts"]
    error = ""
    if request.method == "POST":
        name = request.form.get("user", "")
        if accounts.check(name, request.form.get("password", "")):
            session.clear()
            session["user"] = name
            return redirect(_safe_next(request.form.get("next", "/")))
        error = "用户名或密码不正确"
    return render_template("login.html", error=error, next=request.values.get("next", "/"),
                           accounts=bool(accounts.users()))


@blueprint.route("/logout", methods=["POST"])
def logout():
    session.clear()
    g.user = None
    return redirect(url_for("account.login"))
