"""Report: the figures petition offices publish, for one period, with same-period comparisons.

``petition report --run RUN_DIR [--period month|quarter|half|year] [--end YYYY-MM-DD]
[--history PATH]`` reads every letter (the history plus the run's ``deduped.parquet``),
takes the last *complete* period ending on ``--end`` (default: the latest ``received_at``),
compares it with the same period a year before (同比) and with the previous period (环比),
and writes into the run directory:

``report.xlsx``
    one sheet per table (title and note above the table);
``report.html``
    the narrative, every table and inline SVG charts: one self-contained file that opens
    offline (no scripts, fonts or images fetched) and renders Chinese with the browser's
    CJK fonts;
``report.md``
    the narrative and the definitions (口径说明) as Markdown.

Definitions (printed in the report as well):

* 件次 items: letters received in the period, every channel; 纯件数 unique matters: distinct
  ``case_id`` among them.
* Visits (来访) are counted in batches (批: one registered visit) and person-visits (人次: the
  sum of ``visitors``, a visit without a head count counting one person).
* Topic shares use the period's items as denominator. A letter touching several topics
  (``topics``) is counted under each, so topic counts add up to more than the items; the
  report prints that total.
* Out of scope (不属于受理范围): every topic of the letter is listed in
  ``report.out_of_scope_topics`` (default ``党务政务/咨询及其他``). 涉法涉诉 letters are
  counted on their own row: they are steered into legal procedure.
* Repeat items (重复件): the matter already had an earlier letter (``duplicate_of`` set);
  among them 重复信访 are the same petitioner again (``relation`` = ``repeat_petition``).
* Township: the first match of ``report.township_pattern`` in the address; for letters
  without one, the first known township name in the text: those found in addresses, those
  ``report.township_text_patterns`` find in the texts, and the words of the segment
  dictionaries (``segment.extra_dicts``, ``--dict``) ending in ``report.township_suffixes``.
  The table says how many came from the address and how many from the text.
* 同比/环比 percentages only from a base of ``report.min_change_base`` items; below it the
  tables say 基数过小 and the narrative gives the counts.
* Cases are named by a label (their earliest letter's title, masked) with the id beside it.
* Handling (办结率, 反馈率, 积案 by age, 超期, days to reply and close, by handling body, 回流):
  over letters whose export carried a status, closing or reply column, as of the period's
  end; ``pipeline.reporting.handling`` defines each. Without such columns the tables and
  the narrative say so in one line.

Privacy: no petitioner name, ID number, phone or address is written; people appear only as
their ``petitioner_key`` pseudonym.

``pipeline.cli`` parses the command and calls :func:`run_stage`, as ``nightly`` does. The
work is done by ``pipeline.reporting`` (figures → tables and narrative → render); letters are
read by ``pipeline.letters``.
"""
from pipeline import classify, schema
from pipeline.dedup.cases import Labeler, raw_names
from pipeline.letters import REPORT_UNUSED, load_letters, topic_names
from pipeline.reporting.figures import compute_figures, letters_with_text
from pipeline.reporting.handling import handling_figures
from pipeline.reporting.narrative import model_paragraphs, narrative
from pipeline.reporting.periods import report_period
from pipeline.lookup import is_in
from pipeline.reporting.places import dictionary_townships
from pipeline.reporting.render import Report, write_report
from pipeline.reporting.tables import build_tables
from pipeline.rundir import stage

NAME = "report"


def run_stage(run, config, *, history=None, period=None, end=None, dicts=()):
    """Write report.xlsx, report.html and report.md into ``run`` for one period.

    Parameters
    ----------
    run : RunDir
        Holds ``deduped.parquet``.
    config : Config
        ``config.report`` holds the settings.
    history : str or Path, optional
        Parquet file or folder of earlier letters (default: ``<run>/../archive/letters``
        when it exists).
    period : str, optional
        month, quarter, half or year (default: ``config.report.period``).
    end : date-like, optional
        Report the last complete period ending on this day (default: the latest
        ``received_at``).
    dicts : list of path, optional
        Segment's extra dictionaries of the run (``--dict``): their township words, with
        those of ``segment.extra_dicts``, are looked for in texts.

    Returns
    -------
    StageResult
    """
    settings = config.report
    with stage(run, NAME) as result:
        def period_of(letters):
            return report_period(letters[schema.RECEIVED_AT], period or settings.period, end)
        # texts only where the figures show them (a million letters' texts are a GB)
        letters, source = load_letters(run, history, leave_out=REPORT_UNUSED,
                                       texts_for=lambda letters: letters_with_text(letters, period_of(letters)))
        chosen = period_of(letters)
        known = dictionary_townships([*config.segment.extra_dicts, *dicts], settings.township_suffixes,
                                     settings.township_false_endings)
        labeler = Labeler.from_config(config)
        everyone = raw_names(letters[schema.PETITIONER_NAME]) if schema.PETITIONER_NAME in letters else frozenset()
        figures = compute_figures(letters, chosen, settings, topic_names(settings.taxonomy), labeler, source, known)
        figures["handling"] = handling_figures(
            letters, chosen, config.status,
            lambda case_ids: labeler.labels(letters[is_in(letters[schema.CASE_ID], set(case_ids))], everyone))
        report = Report(chosen, build_tables(figures),
                        narrative(figures) + model_paragraphs(classify.recorded_notice(run)))
        paths = write_report(report, run.path, settings)
        result.rows_in = result.rows_out = len(letters)
        result.notes = {"period": f"{chosen.label} ({chosen.span})",
                        "items in period": figures["overview"]["items"]["now"],
                        "unique matters": figures["overview"]["matters"]["now"],
                        "outputs": [str(p) for p in paths]}
    return result

