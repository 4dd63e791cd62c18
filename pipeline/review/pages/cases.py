"""Cases: the list with its filters, and a case's page with its letters side by side, its links
and the analyst's actions (confirm, detach a letter, not the same matter, merge, undo)."""
from flask import Blueprint, abort, g, redirect, render_template, request, url_for

from pipeline import schema
from pipeline.review.context import decided, workbench
from pipeline.review.data import REOPENED, highlight_segments, top3

blueprint = Blueprint("cases", __name__)
FILTERS = ("q", "status", "topic", "township", "date_from", "date_to")


def case_filters(args):
    """The list's filters from the query string (``min_letters`` an int, ``tonight`` a flag)."""
    chosen = {name: args.get(name, "").strip() for name in FILTERS}
    size = args.get("min_letters", "").strip()
    chosen["min_letters"] = int(size) if size.isdigit() else 0
    chosen["tonight"] = args.get("tonight") == "1"
    return chosen


@blueprint.route("/cases")
def index():
    filters = case_filters(request.args)
    found, total = workbench().find_cases(**filters)
    return render_template("cases.html", cases=found.to_dict("records"), total=total, filters=filters,
                           townships=workbench().townships())


def _case_or_404(case_id):
    snap = workbench().snapshot()
    if case_id not in snap.cases.index:
        abort(404, f"没有纯件 {case_id}")
    return snap, snap.cases.loc[case_id]


@blueprint.route("/cases/<path:case_id>")
def case(case_id):
    bench = workbench()
    snap, row = _case_or_404(case_id)
    letters = snap.case_letters(case_id)
    names = bench.case_shared_names(case_id, letters[schema.CLEAN_TEXT].tolist())
    effective = bench.decided_state()
    shown = [{"letter": letter, "title": highlight_segments(letter["_title"], names),
              "body": highlight_segments(letter["_body"], names), "top3": top3(letter[schema.TOP3]),
              "detached": letter[schema.LETTER_ID] in effective.detached}
             for _, letter in letters.iterrows()]
    merge_q = request.args.get("merge_q", "").strip()
    candidates = bench.find_cases(q=merge_q, limit=20)[0].drop(index=case_id, errors="ignore") if merge_q else None
    links, other_pairs = snap.links_of(letters.index)
    return render_template(
        "case.html", case=row, letters=shown, names=names, links=bench.link_rows(links, effective), other_pairs=other_pairs,
        decisions=bench.decisions_about(letters.index), reopened=_truthy(row.get(REOPENED, "")),
        merge_q=merge_q, candidates=None if candidates is None else candidates.to_dict("records"))


def _truthy(value):
    return str(value).strip().lower() in ("true", "1", "yes", "是")


def _first_letter(case_id):
    snap, _ = _case_or_404(case_id)
    letters = snap.case_letters(case_id)
    if not len(letters):
        abort(404, f"纯件 {case_id} 的来信不在本目录中")
    return letters.index[0], letters.index


def _back(case_id):
    return redirect(url_for("cases.case", case_id=case_id))


@blueprint.route("/cases/<path:case_id>/confirm", methods=["POST"])
@decided
def confirm(case_id):
    """Confirm the case: every letter decided one matter with its first letter."""
    first, ids = _first_letter(case_id)
    store = workbench().store
    for letter in ids[1:]:
        store.add(schema.DECISION_SAME, first, letter, user=g.user, note=f"确认纯件 {case_id}")
    return _back(case_id)


@blueprint.route("/cases/<path:case_id>/detach", methods=["POST"])
@decided
def detach(case_id):
    _first_letter(case_id)
    workbench().store.add(schema.DECISION_DETACH, request.form.get("letter", ""), user=g.user,
                          note=request.form.get("note", ""))
    return _back(case_id)


@blueprint.route("/cases/<path:case_id>/different", methods=["POST"])
@decided
def different(case_id):
    """Mark a link "not the same matter"."""
    _first_letter(case_id)
    workbench().store.add(schema.DECISION_DIFFERENT, request.form.get("letter_a", ""),
                          request.form.get("letter_b", ""), user=g.user, note=request.form.get("note", ""))
    return _back(case_id)


@blueprint.route("/cases/<path:case_id>/merge", methods=["POST"])
@decided
def merge(case_id):
    """Merge with another case given by id; other text searches cases to merge with."""
    first, _ = _first_letter(case_id)
    other = request.form.get("other", "").strip()
    if other not in workbench().snapshot().cases.index:
        return redirect(url_for("cases.case", case_id=case_id, merge_q=other) + "#merge")
    if other == case_id:
        abort(400, "不能与自身合并")
    other_first, _ = _first_letter(other)
    workbench().store.add(schema.DECISION_SAME, first, other_first, user=g.user, note=f"合并纯件 {case_id} 与 {other}")
    return _back(case_id)


@blueprint.route("/decisions/undo", methods=["POST"])
@decided
def undo():
    number = request.form.get("decision", "")
    if not number.isdigit():
        abort(400, "撤销需要决定编号")
    workbench().store.add(schema.DECISION_UNDO, undoes=int(number), user=g.user)
    target = request.form.get("next", "/")
    return redirect(target if target.startswith("/") and not target.startswith("//") else "/")
