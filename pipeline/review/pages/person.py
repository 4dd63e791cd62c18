"""Person history, for case handlers: identifiers typed into a form (POST, never in a URL and never
listed), the petitioner keys derived with the office's key, that person's letters and cases over
time; every look-up written to the access log."""
from flask import Blueprint, g, render_template, request

from pipeline import schema
from pipeline.review import security
from pipeline.review.context import workbench

blueprint = Blueprint("person", __name__)


def history(letters):
    """Span, count, levels reached and cases (``_case``) of a person's ``letters`` (oldest first)."""
    dates = letters[schema.RECEIVED_AT].dropna()
    levels = [lv for lv in schema.LEVELS if lv in set(letters[schema.ADDRESSEE_LEVEL])]
    return {"letters": len(letters), "first": dates.min() if len(dates) else None,
            "last": dates.max() if len(dates) else None,
            "days": int((dates.max() - dates.min()).days) if len(dates) else 0,
            "levels": levels, "highest": levels[-1] if levels else "",
            "cases": letters["_case"].nunique()}


@blueprint.route("/person", methods=["GET", "POST"])
def lookup():
    if request.method == "GET":
        return render_template("person.html", searched=False)
    bench = workbench()
    fields = {name: request.form.get(name, "") for name in ("name", "address", "id_number", "phone")}
    keys = bench.person_keys(**fields)
    letters = bench.person_letters(keys.values())
    security.log_access(bench.home, user=g.user, remote=request.remote_addr, keys=set(keys.values()),
                        bases=set(keys), letters=len(letters))
    snap = bench.snapshot()
    cases = letters.assign(_case=[snap.case_of.get(i, c) for i, c in zip(letters.index, letters[schema.CASE_ID])])
    return render_template("person.html", searched=True, typed=sorted(keys), keys=sorted(set(keys.values())),
                           letters=cases.to_dict("records"), summary=history(cases))
