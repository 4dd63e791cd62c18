"""Calendar periods of the report: a month, quarter, half or year, and the one to report."""
import dataclasses

import pandas as pd

from pipeline.errors import PetitionError

PERIOD_MONTHS = {"month": 1, "quarter": 3, "half": 6, "year": 12}
CN_DIGITS = "〇一二三四五六七八九"


@dataclasses.dataclass(frozen=True)
class Period:
    """A calendar period: ``months`` months from ``start`` (month, quarter, half or year)."""

    kind: str
    start: pd.Timestamp

    @property
    def months(self):
        return PERIOD_MONTHS[self.kind]

    @property
    def end(self):
        """First day after the period."""
        return self.start + pd.DateOffset(months=self.months)

    @property
    def last_day(self):
        return self.end - pd.Timedelta(days=1)

    def shift(self, periods):
        return Period(self.kind, self.start + pd.DateOffset(months=periods * self.months))

    def year_before(self):
        return Period(self.kind, self.start - pd.DateOffset(years=1))

    @property
    def label(self):
        year, month = self.start.year, self.start.month
        if self.kind == "month":
            return f"{year}年{month}月"
        if self.kind == "quarter":
            return f"{year}年第{CN_DIGITS[(month - 1) // 3 + 1]}季度"
        if self.kind == "half":
            return f"{year}年{'上' if month == 1 else '下'}半年"
        return f"{year}年"

    @property
    def span(self):
        return f"{self.start:%Y-%m-%d}至{self.last_day:%Y-%m-%d}"

    def mask(self, dates):
        """Boolean Series: which of ``dates`` fall in the period."""
        return (dates >= self.start) & (dates < self.end)


def last_complete_period(kind, end_date):
    """The latest ``kind`` period whose last day is on or before ``end_date``.

    Periods are calendar-aligned: months, quarters (Jan/Apr/Jul/Oct), halves (Jan/Jul), years.
    ``end_date`` 2024-03-31 gives March 2024; 2024-03-15 gives February 2024.
    """
    if kind not in PERIOD_MONTHS:
        raise PetitionError(f"unknown period {kind!r}; use one of {', '.join(PERIOD_MONTHS)}")
    after = pd.Timestamp(end_date).normalize() + pd.Timedelta(days=1)
    months = PERIOD_MONTHS[kind]
    current = pd.Timestamp(year=after.year, month=(after.month - 1) // months * months + 1, day=1)
    # Whether `after` is the first day of a period or falls inside one, the last complete
    # period is the one before the period containing `after`.
    return Period(kind, current - pd.DateOffset(months=months))


def report_period(dates, kind, end=None):
    """The period to report: the last complete ``kind`` period ending on ``end``.

    ``end`` defaults to the latest of ``dates`` (a datetime Series); raises
    ``PetitionError`` when no date is known.
    """
    if end is None:
        end = dates.max()
        if pd.isna(end):
            raise PetitionError("no letter has a date; pass --end YYYY-MM-DD")
    return last_complete_period(kind, end)
