"""The Flask application: configuration, security hooks, template helpers, the pages' blueprints.

:func:`create_app` builds it over one nightly home. Pages live in ``pipeline.review.pages``
(one module per page, each a blueprint); what they read comes from ``data.Workbench``; what
they write goes to the decisions store. Templates (Jinja2, autoescaped) and the one small
script are in ``templates/`` and ``static/`` beside this file: nothing is fetched from elsewhere.
"""
import secrets
from pathlib import Path

from flask import Flask, abort, g, redirect, render_template, request, session, url_for

from pipeline import schema
from pipeline.review import security
from pipeline.review.context import workbench
from pipeline.review.data import Workbench
from pipeline.reporting.tables import CHANNEL_ZH, LEVEL_ZH

HERE = Path(__file__).parent
RELATION_ZH = {schema.EXACT_COPY: "完全相同", schema.MULTI_ADDRESSED: "一信多投", schema.RESEND: "重发",
               schema.REPEAT_PETITION: "重复信访", schema.SAME_MATTER: "同一事项", schema.DECIDED_SAME: "人工认定同一",
               schema.POSSIBLE: "可能同一", schema.IN_CASE: "同案评分",
               "": "首件"}
STATUS_ZH = {schema.CASE_NEW: "新事项", schema.CASE_CONTINUES: "延续"}
DECISION_ZH = {schema.DECISION_SAME: "同一事项", schema.DECISION_DIFFERENT: "非同一事项",
               schema.DECISION_DETACH: "移出纯件", schema.DECISION_TOPIC: "更正类别", schema.DECISION_UNDO: "撤销"}
OPEN_ENDPOINTS = frozenset({"account.login", "static"})


def create_app(home, config, *, pairs=None, config_file=None, secret_key=None):
    """The workbench over the nightly ``home``.

    Parameters
    ----------
    home : str or Path
        The nightly home (runs, index, archive, decisions.sqlite).
    config : Config
        The loaded configuration (townships, taxonomy, the active models' folders, training).
    pairs : list of (home, file), optional
        Pair files the match model is retrained on (default: its card's sources found here).
    config_file : path, optional
        Passed to ``petition train`` when the topic model is retrained.
    secret_key : str, optional
        Signs the session cookie (default: random per start, so sessions end with the process).
    """
    from pipeline.review.pages import BLUEPRINTS

    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config.update(SECRET_KEY=secret_key or secrets.token_hex(32), SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", MAX_CONTENT_LENGTH=1024 * 1024)
    app.extensions["workbench"] = Workbench(home, config)
    app.extensions["accounts"] = security.Accounts(home)
    app.extensions["retrain"] = {"pairs": pairs, "config_file": config_file}
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    @app.before_request
    def guard():
        accounts = app.extensions["accounts"]
        g.user = session.get("user") if accounts.users() else security.local_user()
        if g.user is None and request.endpoint not in OPEN_ENDPOINTS:
            return redirect(url_for("account.login", next=request.path))
        if request.method == "POST" and not security.check_csrf(session, request.form.get("csrf_token")):
            abort(400, "CSRF token missing or wrong: reload the page and try again")
        return None

    @app.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                                       "img-src 'self'; form-action 'self'; frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"  # pages show personal data: no copy on disk
        return response

    app.jinja_env.globals.update(
        csrf_token=lambda: security.csrf_token(session), channel_zh=lambda c: CHANNEL_ZH.get(c, c),
        level_zh=lambda lv: LEVEL_ZH.get(lv, lv), relation_zh=lambda r: RELATION_ZH.get(r, r),
        status_zh=lambda s: STATUS_ZH.get(s, s), decision_zh=lambda k: DECISION_ZH.get(k, k),
        topic_zh=lambda code: workbench().topic_names.get(code, code), topic_codes=lambda: list(workbench().topic_names),
        schema=schema)

    @app.errorhandler(400)
    @app.errorhandler(404)
    def error_page(error):
        return render_template("error.html", code=error.code, name=error.name, description=error.description), error.code
    app.jinja_env.filters["num"] = lambda value: "" if value is None or value != value else f"{value:.3g}"
    app.jinja_env.filters["date"] = lambda value: "" if value is None or value != value else f"{value:%Y-%m-%d}"
    return app
