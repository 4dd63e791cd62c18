"""Letters: search, a letter's page (topics, attributes, case, links) with topic correction and
"reviewed", and the review queue (least confident first, one click or one key per letter)."""
from flask import Blueprint, abort, g, redirect, render_template, request, url_for

import numpy as np

from pipeline import schema
from pipeline.reporting.tables import LEVEL_ZH
from pipeline.review.context import decided, workbench
from pipeline.review.data import top3

blueprint = Blueprint("letters", __name__)
FILTERS = ("q", "topic", "township", "addressee", "date_from", "date_to")
ATTRIBUTES = (("性质", schema.NATURE), ("涉法涉诉", schema.LAW_LITIGATION), ("匿名", schema.ANONYMOUS),
              ("联名", schema.JOINT), ("联名人数", schema.SIGNATORY_COUNT), ("集体访", schema.COLLECTIVE),
              ("事项所属层级", schema.HOME_LEVEL), ("越级", schema.SKIP_LEVEL), ("责任单位", schema.RESPONSIBLE_BODY))


@blueprint.route("/letters")
def index():
    filters = {name: request.args.get(name, "").strip() for name in FILTERS}
    filters["tonight"] = request.args.get("tonight") == "1"
    try:
        found, total = workbench().find_letters(**filters)
    except ValueError:
        abort(400, "日期格式应为 YYYY-MM-DD")
    return render_template("letters.html", letters=found.to_dict("records"), total=total, filters=filters,
                           townships=workbench().townships())


@blueprint.route("/letters/<path:letter_id>")
def letter(letter_id):
    bench = workbench()
    snap = bench.snapshot()
    if letter_id not in snap.letters.index:
        abort(404, f"没有来信 {letter_id}")
    row = snap.letters.loc[letter_id]
    effective = bench.decided_state()
    return render_template(
        "letter.html", letter=row, top3=top3(row[schema.TOP3]), case_id=snap.case_of.get(letter_id, row[schema.CASE_ID]),
        attributes=[(label, _shown(row.get(column, ""))) for label, column in ATTRIBUTES],
        links=bench.link_rows(snap.links_of([letter_id])[0], effective), corrected=effective.topics.get(letter_id),
        decisions=bench.decisions_about([letter_id]))


def _shown(value):
    """An attribute as the page writes it: 是/否 for flags, the Chinese level name."""
    if isinstance(value, (bool, np.bool_)):
        return "是" if value else "否"
    return LEVEL_ZH.get(value, value) if value in schema.LEVELS else value


def _next_page(default):
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


@blueprint.route("/letters/<path:letter_id>/topic", methods=["POST"])
@decided
def correct_topic(letter_id):
    """Correct the letter's topics (one or more labels or codes of the taxonomy, first the main one)."""
    topics = [t for t in request.form.getlist("topic") if t]
    unknown = [t for t in topics if not workbench().names_topic(t)]
    if not topics or unknown:
        abort(400, f"请选择分类体系中的类别（未知：{'、'.join(unknown)}）" if unknown else "请至少选择一个类别")
    _known_letter(letter_id)
    workbench().store.add(schema.DECISION_TOPIC, letter_id, value=topics, user=g.user,
                          note=request.form.get("note", "人工更正"))
    return redirect(_next_page(url_for("letters.letter", letter_id=letter_id)))


@blueprint.route("/letters/<path:letter_id>/reviewed", methods=["POST"])
@decided
def reviewed(letter_id):
    """Mark as reviewed: the classifier's topics confirmed as a topic decision."""
    row = _known_letter(letter_id)
    workbench().store.add(schema.DECISION_TOPIC, letter_id, value=row[schema.TOPIC_LIST] or [row[schema.TOPIC]],
                          user=g.user, note="已复核")
    return redirect(_next_page(url_for("letters.letter", letter_id=letter_id)))


def _known_letter(letter_id):
    letters = workbench().snapshot().letters
    if letter_id not in letters.index:
        abort(404, f"没有来信 {letter_id}")
    return letters.loc[letter_id]


@blueprint.route("/queue")
def queue():
    bench = workbench()
    waiting = bench.review_queue()
    rows = [{"letter": row, "top3": top3(row[schema.TOP3])} for _, row in waiting.iterrows()]
    return render_template("queue.html", rows=rows, total=len(bench.review_queue(limit=None)),
                           topics=bench.topic_names)
