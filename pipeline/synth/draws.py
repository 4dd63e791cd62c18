"""Random draws, dates and numbers as petitioners write them, shared by planner and renderer.

Every draw takes the ``random.Random`` to draw from and uses ``rng.random()`` only, so the
sequence of draws (and therefore every generated file) depends on nothing but the seed.
Days are integer offsets from ``FIRST_DAY`` (2024-01-01).
"""
import bisect
import datetime as dt
import math

from pipeline.synth.settings import FIRST_DAY, N_DAYS

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CN_NUM = "零一二三四五六七八九十"
MATTER_STREAM, PERSON_STREAM, TEXT_STREAM, OWN_STREAM = range(4)

_DAYS_BEFORE = 3000              # origins of matters reach back ~7 years
_DATES = [FIRST_DAY + dt.timedelta(days=d) for d in range(-_DAYS_BEFORE, N_DAYS + 100)]


def cumulative(weights):
    """Running sums of ``weights`` (the form `weighted` draws from)."""
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def weighted(rng, cum):
    """Index drawn with the weights whose running sums are ``cum``."""
    return bisect.bisect_right(cum, rng.random() * cum[-1])


def pick(rng, seq):
    """One element of ``seq``, uniformly."""
    return seq[int(rng.random() * len(seq))]


def below(rng, n):
    """Uniform integer in [0, n); Random.randrange is several times slower."""
    return int(rng.random() * n)


def randint(rng, low, high):
    """Uniform integer in [low, high]."""
    return low + int(rng.random() * (high - low + 1))


def log_uniform(rng, low, high, step):
    """Integer between ``low`` and ``high``, uniform on a log scale, rounded down to ``step``."""
    return int(math.exp(math.log(low) + rng.random() * math.log(high / low)) // step * step)


def stream_seed(seed, stream, index):
    """Seed of one independent generator: streams are matter, person, text, own fields."""
    return (seed * 8 + stream) * 2 ** 32 + index


def date_of(offset):
    """Date of a day offset from 2024-01-01."""
    return _DATES[offset + _DAYS_BEFORE]


def cn_date(day, rng=None):
    """A day as written in a letter (2024年3月5日); with ``rng``, sometimes only the month."""
    d = date_of(day)
    if rng is not None and rng.random() < 0.25:
        return f"{d.year}年{d.month}月"
    return f"{d.year}年{d.month}月{d.day}日"


def money(yuan, rng):
    """An amount as written in a letter: 3500元, or 12.5万元 for larger sums."""
    if yuan >= 10000 and rng.random() < 0.6:
        return f"{round(yuan / 10000, 1):g}万元"
    return f"{yuan}元"


def duration(days, rng):
    """Say how long a matter has dragged on, as people write it."""
    if days < 45:
        return pick(rng, ("二十多天", "一个多月", "个把月"))
    months = days // 30
    if months < 12:
        return pick(rng, (f"{months}个月", "几个月", "半年多" if months >= 6 else "好几个月"))
    years = days // 365
    word = "两" if years == 2 else CN_NUM[years] if years <= 10 else str(years)
    return pick(rng, (f"{word}年多", f"{years}年", f"整整{word}年", f"{word}年有余"))


def id_checksum(body17):
    """ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(body17, ID_WEIGHTS)) % 11]
