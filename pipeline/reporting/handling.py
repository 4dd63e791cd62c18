"""The report's handling figures: 办结率, 反馈率, 超期, 积案 by age, days to reply and close, by
handling body, and 回流, as plain data: ``figures["handling"]`` (``report`` adds it to ``figures.compute_figures``).

Definitions (the tables print them):

* the period's *tracked* items: letters received in the period whose export gave a status,
  closing date or reply (``status.is_tracked``); rates are over them, never over letters of
  exports without such columns;
* 办结率: closed by the period's end (``status.closed_by``) / tracked items not 不予受理;
* 反馈率: answered by the period's end (``status.answered_by``; a reply without a status is an
  answer) / tracked items;
* days to reply / to close: median of (reply date − received) and (closing date − received)
  over the period's items that have both dates by the period's end;
* 积案 (backlog): every tracked letter received before the period's end, still open at its end
  (neither closed nor 不予受理), by days since received (bands ``status.age_bands``); 超期:
  open longer than ``status.time_limit_days`` (and longer than ``extended_limit_days``);
* by handling body (责任单位): the same per body; bodies ranked by overdue items;
* 回流: the period's letters dedupe marked ``reopened`` (every earlier letter of the case was
  closed before it came), and their cases.

Each part says whether the letters hold what it needs (``available``): the report writes
one line instead of zeros when they do not.
"""
from pipeline import schema
from pipeline.reporting.figures import UNNAMED_UNIT, pct
from pipeline.status import answered_by, closed_by, has_closing, is_tracked


def _median_days(start, end):
    """Median of whole days from ``start`` to ``end`` (datetimes) where both exist; None if none."""
    days = (end - start).dt.days.dropna()
    return None if days.empty else round(float(days.median()), 1)


def _rates(now, end):
    """Counts and rates of the tracked letters ``now``, as of ``end`` (exclusive)."""
    closed, answered = closed_by(now, end), answered_by(now, end)
    refused = now[schema.STATUS] == schema.NOT_ACCEPTED
    replied = now[schema.REPLIED_AT].where(now[schema.REPLIED_AT] < end)
    shut = now[schema.CLOSED_AT].where(now[schema.CLOSED_AT] < end)
    return {"tracked": len(now), "closed": int(closed.sum()), "answered": int(answered.sum()),
            "not_accepted": int(refused.sum()), "closed_rate": pct(int(closed.sum()), int((~refused).sum())),
            "answered_rate": pct(int(answered.sum()), len(now)),
            "days_to_reply": _median_days(now[schema.RECEIVED_AT], replied),
            "days_to_close": _median_days(now[schema.RECEIVED_AT], shut)}


def _backlog(open_letters, end, settings):
    """Open letters by age band and past the time limits, as of ``end``."""
    age = (end - open_letters[schema.RECEIVED_AT]).dt.days
    edges = [0, *settings.age_bands]
    bands = [{"from": low, "to": high, "items": int(((age >= low) & (age < high)).sum())}
             for low, high in zip(edges, edges[1:])]
    bands.append({"from": edges[-1], "to": None, "items": int((age >= edges[-1]).sum())})
    return {"open": len(open_letters), "bands": bands,
            "overdue": int((age > settings.time_limit_days).sum()),
            "overdue_extended": int((age > settings.extended_limit_days).sum())}


def handling_figures(letters, period, settings, labels=None):
    """The handling part of the report's figures.

    Parameters
    ----------
    letters : DataFrame
        Output of ``letters.prepare`` (all letters: history and run).
    period : Period
        The period reported; counts are as of its end.
    settings : StatusConfig
        ``time_limit_days``, ``extended_limit_days``, ``age_bands``.
    labels : callable, optional
        {case id: label} of a list of case ids (the report's case labels).

    Returns
    -------
    dict
        ``available`` {status, reply_dates, close_dates, closing, bodies}: what the letters
        hold (``closing``: a closing date or a status other than accepted, which 办结率,
        积案 and 回流 need: an export of replies alone has none);
        ``period`` (``_rates`` of the period's tracked items, plus ``items``: all of them);
        ``backlog`` (``_backlog`` of every open letter); ``bodies`` rows ranked by overdue
        items; ``reopened`` {items, matters: [{case_id, label, items}]}; ``limits``.
    """
    end = period.end
    dates = letters[schema.RECEIVED_AT]
    tracked = letters[dates.notna() & (dates < end) & is_tracked(letters)]  # one copy of a million letters, not two
    now = tracked[period.mask(tracked[schema.RECEIVED_AT])]
    open_letters = tracked[~closed_by(tracked, end) & (tracked[schema.STATUS] != schema.NOT_ACCEPTED)]
    bodies = []
    body_of = tracked[schema.HANDLING_BODY].replace("", UNNAMED_UNIT)
    for body in sorted(set(body_of)):
        in_period = now[body_of[now.index] == body]
        backlog = _backlog(open_letters[body_of[open_letters.index] == body], end, settings)
        bodies.append({"body": body, "items": len(in_period), **_rates(in_period, end),
                       "open": backlog["open"], "overdue": backlog["overdue"],
                       "overdue_extended": backlog["overdue_extended"]})
    bodies.sort(key=lambda row: (-row["overdue"], -row["open"], row["body"]))
    for rank, row in enumerate(bodies, start=1):
        row["rank"] = rank
    in_period = letters[period.mask(dates)]
    reopened = in_period[in_period[schema.REOPENED]]
    counts = reopened.groupby(schema.CASE_ID).size().sort_values(ascending=False, kind="stable")
    names = labels(list(counts.index)) if labels and len(counts) else {}
    return {
        "available": {"status": bool(len(tracked)), "reply_dates": bool(tracked[schema.REPLIED_AT].notna().any()),
                      "close_dates": bool(tracked[schema.CLOSED_AT].notna().any()),
                      "closing": has_closing(tracked),
                      "bodies": bool((tracked[schema.HANDLING_BODY] != "").any())},
        "period": {"items": int(period.mask(dates).sum()), **_rates(now, end)},
        "backlog": _backlog(open_letters, end, settings),
        "bodies": bodies,
        "reopened": {"items": len(reopened),
                     "matters": [{"case_id": case, "label": names.get(case, ""), "items": int(n)}
                                 for case, n in counts.items()]},
        "limits": {"time_limit_days": settings.time_limit_days, "extended_limit_days": settings.extended_limit_days,
                   "as_of": period.last_day},
    }

