"""Synthetic petition letters (信访件) with planted repeats, for tests, benchmarks and demos.

    python -m pipeline.synth --n 5000 --seed 20241 --out corpora/sample/letters.csv

Writes an office-register style letters file (Chinese headers, mapped by ``schema.ALIASES``)
and two truth files next to it (or into ``--truth-dir``): ``truth_letters.csv`` and
``truth_pairs.csv``. The same seed always gives byte-identical files.

Structure
---------
1. World (`load_world`): the fictional county's name banks (``corpora/synth/places.yaml``)
   and the phrase banks (``corpora/synth/phrases.yaml``), compiled once into tuples.
2. Plan (`plan_letters`): a single ``random.Random(seed)`` walks matter by matter and
   decides who writes, when, to whom, by which channel, and how each letter relates to the
   others. The plan is compact integer columns, no text, so 1M letters fit in memory.
3. Render (`_Renderer`): every letter is a pure function of (seed, plan). A letter's text is
   drawn from a generator seeded with the plan index of the letter whose text it uses
   (``text_src``): copies reproduce their source's text without keeping it, and chunks can
   be rendered in any order. Register fields and copy edits use the letter's own seed.
4. Write: letters sorted by date and numbered per year (XF2024-000123), rendered and
   written in chunks (CSV with BOM, or parquet), truth rows in the same order.

Planted patterns (truth_letters.pattern)
----------------------------------------
original         first letter of a matter.
same_matter      first letter of another petitioner on the same matter (own wording, same
                 names); 5-15 petitioners make an organised campaign. Every letter of a
                 matter several people raise is a complaint (not a consultation or suggestion).
repeat_petition  the same person on the same matter 2-12 weeks later, rendered afresh
                 (different phrase variants and length) with a "已反映过" sentence.
exact_copy       the same body again, 0-7 days later, to the same or another addressee.
multi_addressed  一信多投: copies to 1-3 other addressees within 0-10 days, with tiny edits
                 (salutation naming the new addressee, a trailing date, punctuation).
resend           the same addressee 7-60 days later, with a resend note or a date added.
Also planted: anonymous letters, joint letters (联名人数), collective visits (来访人数 >= 5),
two-topic matters, traditional script (whole letter through OpenCC s2t), ID and mobile
numbers in the text, text quirks (full-width digits, 、 as decimal point, HTML whitespace,
a line broken mid-word, half-width punctuation, web boilerplate, mis-decoded fragments)
and ~0.5% malformed rows (empty text, impossible date, unknown channel, reused 信件编号).

truth_letters.csv has one row per letters row, in the same order: letter_id, topics (codes,
primary first, "|"-separated), nature, matter_id, person_id (empty when anonymous),
anonymous, signatories, visitors, traditional, identifiers_in_text, home_level (level of
the place the matter belongs to), skip_level (1 when the addressee's level is above both the
home level and the county: 越级), pattern, malformed (empty or the reason).

truth_pairs.csv lists every pair of letters of one matter (malformed rows excluded),
letter_a before letter_b in file order, with the first relation that holds:
  1. exact_copy       same text source and identical body
  2. multi_addressed  same text source, different addressee, at most 30 days apart
     resend           same text source otherwise (same addressee, or later than 30 days)
  3. repeat_petition  different text, same (non-anonymous) person
  4. same_matter      different text, different or unknown petitioners
So exact_copy > multi_addressed/resend > repeat_petition > same_matter.
"""
import argparse
import array
import bisect
import csv
import datetime as dt
import hashlib
import math
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from opencc import OpenCC
from tqdm import tqdm

from pipeline.schema import LEVELS

SYNTH_DIR = Path(__file__).resolve().parent.parent / "corpora" / "synth"

# --- Vocabulary of the output -----------------------------------------------------------
HEADERS = ("信件编号", "来信日期", "信访形式", "信访人", "身份证号", "联系电话", "住址",
           "受理机关", "受理层级", "标题", "内容", "联名人数", "来访人数")
TRUTH_LETTER_COLUMNS = ("letter_id", "topics", "nature", "matter_id", "person_id", "anonymous",
                        "signatories", "visitors", "traditional", "identifiers_in_text",
                        "home_level", "skip_level", "pattern", "malformed")
TRUTH_PAIR_COLUMNS = ("letter_a", "letter_b", "relation")
CHANNELS = ("来信", "来访", "来电", "网上信访", "领导信箱")
LETTER, VISIT, PHONE, ONLINE, MAILBOX = range(5)
NATURES = ("申诉", "举报控告", "求决", "咨询", "意见建议")
SOFT_NATURES = ("咨询", "意见建议")  # not complaints: nobody campaigns with them
PATTERNS = ("original", "exact_copy", "multi_addressed", "resend", "repeat_petition", "same_matter")
ORIGINAL, EXACT, MULTI, RESEND, REPEAT, SAME = range(6)
MALFORMED = ("", "empty_text", "bad_date", "unknown_channel", "duplicate_id")
TOWNSHIP, COUNTY, CITY = 0, 1, 2   # indexes into schema.LEVELS
VILLAGE, ESTATE, ELSEWHERE = range(3)

# Slots templates may use: the matter's names and numbers, then the letter's own values.
MATTER_SLOTS = ("province", "city", "county", "township", "village", "group", "estate", "road",
                "road2", "place", "company", "developer", "factory", "soe", "property", "shop",
                "school", "hospital", "station", "project", "court", "gov", "dept", "official",
                "role", "party", "case_no", "doc_no", "amount", "amount_small", "price_mu",
                "area", "area_m2", "households", "workers", "pct", "origin", "origin_year")
LETTER_SLOTS = ("name", "gender", "age", "home", "address", "phone", "idno", "我", "addressee",
                "date", "duration", "prev_date", "prev_addressee", "visitors", "signatories",
                "signlist", "my_area", "my_amount", "theme", "when", "where", "spouse")
SLOTS = frozenset(MATTER_SLOTS + LETTER_SLOTS)

# --- Rates (behaviour, not wording) -----------------------------------------------------
FIRST_DAY = dt.date(2024, 1, 1)
N_DAYS = 731                                   # 2024-01-01 .. 2025-12-31
CHANNEL_WEIGHTS = (35, 15, 8, 35, 7)           # 来信 来访 来电 网上信访 领导信箱
LEVEL_WEIGHTS = {                              # township county city province national
    LETTER: (18, 62, 12, 6, 2), VISIT: (15, 70, 10, 4, 1), PHONE: (0, 85, 15, 0, 0),
    ONLINE: (14, 60, 16, 7, 3), MAILBOX: (0, 72, 25, 3, 0),
}
P_SAME_MATTER = 0.035      # a matter is raised by 2-4 petitioners ...
P_CAMPAIGN = 0.006         # ... or by an organised group of 5-15
P_REPEAT = 0.105           # a named complainant writes again on the matter (1-3 times)
P_ESCALATE = 0.4           # each repeat goes one level higher with this chance
P_MULTI, P_EXACT, P_RESEND = 0.06, 0.03, 0.025
P_REUSE_PERSON = 0.03      # long-term petitioners (老户) with several matters
P_TWO_TOPICS = 0.12        # for topics that have partner topics
P_PEAK_MONTH = 0.35        # a topic's new matter falls in one of its peak months
P_MALFORMED = 0.005
P_TRADITIONAL = 0.03
P_IDS_IN_TEXT = 0.07
P_COLLECTIVE_VISIT = 0.06  # a visit with 5+ people even without an organised group
QUIRK_RATES = {"decimal": 0.2,        # of letters; only those with a decimal number change
               "fullwidth": 0.04, "halfwidth": 0.05, "break": 0.04, "mojibake": 0.003,
               "boilerplate": 0.04,    # online messages only
               "html": 0.15}           # online and mailbox; other channels an eighth of it
BODY_MIN, BODY_CAP = 80, 1400  # composed bodies stay inside; edits and quirks add < 100
FILLERS = (6, 450, 45)         # generic sentences: 6, plus one per 45 chars of target over 450
MULTI_SECTIONS = ("facts", "asks", "suggests", "timeline", "more", "more_ask")
SECONDARY_SECTIONS = ("timeline", "more", "more_ask")   # grow only after the topic's own
CHUNK = 20_000

DECIMAL_RE = re.compile(r"(\d)\.(\d)")
FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
HALFWIDTH_PUNCT = str.maketrans({"，": ",", "：": ":", "；": ";", "（": "(", "）": ")", "！": "!"})
PUNCT_SWAPS = (("，", ","), ("。", "."), ("！", "!"), ("：", ":"), ("？", "?"))
CJK = re.compile(r"[\u4e00-\u9fff]{2}")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CN_NUM = "零一二三四五六七八九十"


# ======================================================================================
# Templates
# ======================================================================================
class _Ref(str):
    """A ``<bank>`` reference inside a compiled template."""
    __slots__ = ()


def compile_template(text):
    """Compile one template string into a node.

    A node is a ``str`` (literal), a ``list`` (sequence of nodes), a ``tuple`` (alternatives)
    or a ``_Ref`` (bank reference). ``{slot}`` stays literal for ``str.format_map``.
    """
    node, _ = _parse(text, 0, nested=False)
    return node


def _parse(text, i, nested):
    parts, literal = [], []

    def flush():
        if literal:
            parts.append("".join(literal))
            literal.clear()

    while i < len(text):
        char = text[i]
        if nested and char in "|]":
            break
        if char == "[":
            flush()
            alternatives, i = [], i + 1
            while True:
                node, i = _parse(text, i, nested=True)
                alternatives.append(node)
                if i >= len(text):
                    raise ValueError(f"unclosed '[' in template {text!r}")
                i += 1
                if text[i - 1] == "]":
                    break
            parts.append(tuple(alternatives))
        elif char == "<":
            end = text.find(">", i)
            if end < 0:
                raise ValueError(f"unclosed '<' in template {text!r}")
            flush()
            parts.append(_Ref(text[i + 1:end]))
            i = end + 1
        else:
            literal.append(char)
            i += 1
    flush()
    if not parts:
        return "", i
    if len(parts) == 1 and type(parts[0]) is str:
        return parts[0], i
    return parts, i


def expand(node, rng, banks):
    """Render a compiled node: pick alternatives with ``rng``, resolve bank references."""
    kind = type(node)
    if kind is tuple:
        node = node[int(rng.random() * len(node))]
        kind = type(node)
    if kind is str:
        return node
    if kind is list:
        out = []
        for part in node:          # literal choices inline: this loop is the hot path
            if type(part) is tuple:
                part = part[int(rng.random() * len(part))]
            out.append(part if type(part) is str else expand(part, rng, banks))
        return "".join(out)
    return expand(banks[node], rng, banks)


def _refs(node):
    """Bank names a compiled node refers to."""
    if type(node) is _Ref:
        return {str(node)}
    if isinstance(node, (list, tuple)):
        return set().union(*(_refs(part) for part in node)) if node else set()
    return set()


def _compile_bank(templates, where):
    """Compile a YAML list of templates into a tuple of nodes; check their slots."""
    if not isinstance(templates, list) or not templates:
        raise ValueError(f"{where}: expected a non-empty list of templates")
    for text in templates:
        unknown = set(re.findall(r"\{([^{}]*)\}", str(text))) - SLOTS
        if unknown:
            raise ValueError(f"{where}: unknown slots {sorted(unknown)} in {text!r}")
    return tuple(compile_template(str(text)) for text in templates)


# ======================================================================================
# World: name banks, phrase banks, addressees
# ======================================================================================
class World:
    """Everything the generator draws from, loaded from ``corpora/synth/*.yaml``."""

    TOPIC_KEYS = ("name", "weight", "natures", "home", "place", "local", "anonymous", "joint",
                  "dept", "roles", "peak_months", "issues")

    def __init__(self, places, phrases):
        self.places = places
        self._ref_cache = {}       # id(bank) -> (bank, names it refers to); banks are shared
        self._load_geography(places)
        self._load_topics(phrases)
        self._load_bodies(places)
        self.edits = {name: _compile_bank(bank, f"edits.{name}")
                      for name, bank in phrases["edits"].items()}
        self.boilerplate = _compile_bank(phrases["web_boilerplate"], "web_boilerplate")
        self.structures = self._load_structures(phrases["structures"])
        self.day_cum = _cumulative(_day_weights())
        self.s2t = OpenCC("s2t")

    # -- geography -------------------------------------------------------------------------
    def _load_geography(self, places):
        self.townships = [t["name"] for t in places["townships"]]
        self.villages, self.estates = [], []          # (name, township index)
        self.township_villages, self.township_estates = [], []
        for ti, township in enumerate(places["townships"]):
            self.township_villages.append([len(self.villages) + k
                                           for k in range(len(township["villages"]))])
            self.villages += [(v, ti) for v in township["villages"]]
            self.township_estates.append([len(self.estates) + k
                                          for k in range(len(township["estates"]))])
            self.estates += [(e, ti) for e in township["estates"]]

    # -- topics and phrase banks -----------------------------------------------------------
    def _load_topics(self, phrases):
        """Per topic: its settings, and banks[topic][issue][nature] (dicts of banks)."""
        generic = {name: self._generic_bank(value, name)
                   for name, value in phrases["generic"].items()}
        self.topics = list(phrases["topics"])
        self.topic_cfg, self.banks = [], []
        for code in self.topics:
            raw = phrases["topics"][code]
            cfg = {key: raw.get(key) for key in self.TOPIC_KEYS}
            cfg["nature_cum"] = _cumulative([raw["natures"].get(n, 0) for n in NATURES])
            cfg["complaint_nature_cum"] = _cumulative([raw["natures"].get(n, 0) if n not in SOFT_NATURES else 0
                                                       for n in NATURES])
            cfg["home_levels"] = [LEVELS.index(level) for level in raw["home"]]
            cfg["home_cum"] = _cumulative(list(raw["home"].values()))
            cfg["peak_days"] = [d for d in range(N_DAYS)
                                if _day(d).month in (raw.get("peak_months") or ())]
            cfg["issue_cum"] = _cumulative([issue.get("weight", 1)
                                            for issue in raw["issues"].values()])
            shared = {name: _compile_bank(value, f"topics.{code}.{name}")
                      for name, value in raw.items() if name not in self.TOPIC_KEYS}
            by_issue = []
            for issue_name, issue in raw["issues"].items():
                own = dict(shared)
                for name, value in issue.items():
                    if name == "weight":
                        continue
                    bank = _compile_bank(value, f"topics.{code}.issues.{issue_name}.{name}")
                    own[name] = own.get(name, ()) + bank if name == "facts" else bank
                merged = [self._merge(generic, own, nature) for nature in NATURES]
                self._check_issue(f"topics.{code}.issues.{issue_name}", raw, merged)
                by_issue.append(merged)
            self.topic_cfg.append(cfg)
            self.banks.append(by_issue)
        self.topic_cum = _cumulative([cfg["weight"] for cfg in self.topic_cfg])
        for cfg in self.topic_cfg:
            cfg["partners"], cfg["partner_cum"] = [], []
        partner_weights = {}
        for first, second, weight in phrases["topic_pairs"]:
            partner_weights.setdefault(first, []).append((self.topics.index(second), weight))
        for code, pairs in partner_weights.items():
            cfg = self.topic_cfg[self.topics.index(code)]
            cfg["partners"] = [t for t, _ in pairs]
            cfg["partner_cum"] = _cumulative([w for _, w in pairs])

    @staticmethod
    def _generic_bank(value, name):
        if isinstance(value, dict):
            return {nature: _compile_bank(bank, f"generic.{name}.{nature}")
                    for nature, bank in value.items()}
        return _compile_bank(value, f"generic.{name}")

    @staticmethod
    def _merge(generic, own, nature):
        """Banks for one (topic issue, nature): the topic's own banks over the generic ones."""
        merged = {}
        for name, bank in generic.items():
            if isinstance(bank, dict):
                bank = bank.get(nature, bank.get("default"))
            if bank:
                merged[name] = bank
        merged.update(own)
        return merged

    def _check_issue(self, where, raw, banks_by_nature):
        """Every nature the topic uses has the banks its letters need, and no dangling <ref>."""
        required = {"咨询": ("ask",), "意见建议": ("suggest",)}
        for nature, banks in zip(NATURES, banks_by_nature):
            if not raw["natures"].get(nature):
                continue
            needs = ("subject", "core", "facts", "want", "who", "theme") + required.get(nature, ())
            missing = [name for name in needs if name not in banks]
            if missing:
                raise ValueError(f"{where}: nature {nature} needs banks {missing}")
            for name, bank in banks.items():
                if id(bank) not in self._ref_cache:
                    self._ref_cache[id(bank)] = (bank, set().union(*map(_refs, bank)))
                dangling = self._ref_cache[id(bank)][1] - set(banks)
                if dangling:
                    raise ValueError(f"{where}.{name}: unknown banks {sorted(dangling)}")

    # -- structures ------------------------------------------------------------------------
    @staticmethod
    def _load_structures(raw):
        """{(family, nature family): [structure]}; a structure is a list of entries,
        an entry is (section, probability) or a list of entries to shuffle."""
        def entry(item):
            if isinstance(item, list):
                return [entry(sub) for sub in item]
            name, _, prob = str(item).partition(" ")
            return (name, float(prob) if prob else 1.0)
        return {(family, kind): [[entry(item) for item in structure] for structure in structures]
                for family, by_kind in raw.items() for kind, structures in by_kind.items()}

    # -- addressees ------------------------------------------------------------------------
    def _load_bodies(self, places):
        """Bodies as (name, level); candidate lists per (level, channel kind, topic)."""
        self.bodies = []
        self.township_bodies = []
        for township in self.townships:
            names = [t.format(gov=_township_gov(township), township=township)
                     for t in places["township_bodies"]]
            self.township_bodies.append([len(self.bodies) + k for k in range(len(names))])
            self.bodies += [(name, TOWNSHIP) for name in names]
        self.body_cands = {}
        for spec in places["bodies"]:
            index, level = len(self.bodies), LEVELS.index(spec["level"])
            self.bodies.append((spec["name"], level))
            kinds = spec.get("channels") or ["general"]
            for t, code in enumerate(self.topics):
                matches = spec["topics"] == "all" or code in spec["topics"]
                weight = spec.get("w", 1) * (1 if spec["topics"] == "all" else 3)
                for kind in kinds:
                    if matches:
                        self.body_cands.setdefault((level, kind, t), []).extend([index] * weight)

        # Where a petitioner went before (timeline entries): the county, sometimes the city.
        self.history_places = [
            [self.bodies[b][0] for b in self.candidates(COUNTY, LETTER, t)
             + self.candidates(CITY, LETTER, t)[::3]]
            for t in range(len(self.topics))]

    def candidates(self, level, channel, topic):
        """Addressee indexes for a level (county and up), channel and topic."""
        kind = {MAILBOX: "mailbox", PHONE: "phone"}.get(channel, "general")
        return self.body_cands[(level, kind, topic)]


def load_world(directory=SYNTH_DIR):
    """Load and compile ``places.yaml`` and ``phrases.yaml`` from ``directory``."""
    directory = Path(directory)
    read = lambda name: yaml.safe_load((directory / name).read_text(encoding="utf-8"))
    return World(read("places.yaml"), read("phrases.yaml"))


def _township_gov(township):
    return f"{township}办事处" if township.endswith("街道") else f"{township}人民政府"


# ======================================================================================
# Small helpers
# ======================================================================================
def _cumulative(weights):
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _weighted(rng, cum):
    """Index drawn with the weights whose running sums are ``cum``."""
    return bisect.bisect_right(cum, rng.random() * cum[-1])


def _pick(rng, seq):
    return seq[int(rng.random() * len(seq))]


def _below(rng, n):
    """Uniform integer in [0, n); Random.randrange is several times slower."""
    return int(rng.random() * n)


def _randint(rng, low, high):
    """Uniform integer in [low, high]."""
    return low + int(rng.random() * (high - low + 1))


def _seed(seed, stream, index):
    """Seed of one independent generator: streams are matter, person, text, own fields."""
    return (seed * 8 + stream) * 2 ** 32 + index


MATTER_STREAM, PERSON_STREAM, TEXT_STREAM, OWN_STREAM = range(4)


_DAYS_BEFORE = 3000              # origins of matters reach back ~7 years
_DATES = [FIRST_DAY + dt.timedelta(days=d) for d in range(-_DAYS_BEFORE, N_DAYS + 100)]


def _day(offset):
    """Date of a day offset from 2024-01-01."""
    return _DATES[offset + _DAYS_BEFORE]


def _day_weights():
    """Relative letter volume per day: fewer on weekends, more in 2025 (year-on-year rise)."""
    weights = []
    for offset in range(N_DAYS):
        day = _day(offset)
        weekday = 0.3 if day.weekday() >= 5 else 1.0
        year = 1.0 if day.year == 2024 else 1.09
        season = 1.15 if day.month in (3, 4, 5) else 0.9 if day.month in (8, 10) else 1.0
        weights.append(weekday * year * season)
    return weights


def id_checksum(body17):
    """ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(body17, ID_WEIGHTS)) % 11]


def _cn_date(day, rng=None):
    d = _day(day)
    if rng is not None and rng.random() < 0.25:
        return f"{d.year}年{d.month}月"
    return f"{d.year}年{d.month}月{d.day}日"


def _money(yuan, rng):
    if yuan >= 10000 and rng.random() < 0.6:
        return f"{round(yuan / 10000, 1):g}万元"
    return f"{yuan}元"


def _duration(days, rng):
    """Say how long a matter has dragged on, as people write it."""
    if days < 45:
        return _pick(rng, ("二十多天", "一个多月", "个把月"))
    months = days // 30
    if months < 12:
        return _pick(rng, (f"{months}个月", "几个月", "半年多" if months >= 6 else "好几个月"))
    years = days // 365
    word = "两" if years == 2 else CN_NUM[years] if years <= 10 else str(years)
    return _pick(rng, (f"{word}年多", f"{years}年", f"整整{word}年", f"{word}年有余"))


def _log_uniform(rng, low, high, step):
    return int(math.exp(math.log(low) + rng.random() * math.log(high / low)) // step * step)


# ======================================================================================
# Plan
# ======================================================================================
class Plan:
    """Compact integer columns; one entry per planned letter (the plan index).

    Letter columns: day (offset from 2024-01-01), sec (time of day), matter, person (-1 =
    anonymous), text_src (plan index whose rendering gives this letter's text: itself, or
    the source of a copy), prev (the letter a repeat follows or a copy copies; -1),
    pattern, channel, body (addressee index), nature, signatories, visitors, malformed.
    Matter columns (m_*) and person columns (p_*) are indexed by matter and person id.
    """

    LETTER_COLUMNS = ("day", "sec", "matter", "person", "text_src", "prev", "pattern",
                      "channel", "body", "nature", "signatories", "visitors", "malformed")
    MATTER_COLUMNS = ("topic", "issue", "topic2", "issue2", "home", "township", "village",
                      "estate", "place_kind", "origin")
    PERSON_COLUMNS = ("kind", "township", "place")

    def __init__(self):
        for name in self.LETTER_COLUMNS:
            setattr(self, name, array.array("i"))
        for name in self.MATTER_COLUMNS:
            setattr(self, "m_" + name, array.array("i"))
        for name in self.PERSON_COLUMNS:
            setattr(self, "p_" + name, array.array("i"))

    def __len__(self):
        return len(self.day)

    def add_letter(self, **values):
        for name in self.LETTER_COLUMNS:
            getattr(self, name).append(values[name])
        return len(self.day) - 1

    def add_matter(self, **values):
        for name in self.MATTER_COLUMNS:
            getattr(self, "m_" + name).append(values[name])
        return len(self.m_topic) - 1

    def add_person(self, **values):
        for name in self.PERSON_COLUMNS:
            getattr(self, "p_" + name).append(values[name])
        return len(self.p_kind) - 1

    def truncate(self, n):
        for name in self.LETTER_COLUMNS:
            del getattr(self, name)[n:]


class _Planner:
    """Fills a `Plan` matter by matter from one ``random.Random(seed)``."""

    def __init__(self, world, seed, n):
        self.world, self.rng, self.n = world, random.Random(seed), n
        self.plan = Plan()
        self.channel_cum = _cumulative(CHANNEL_WEIGHTS)

    def run(self):
        """Plan ``n`` letters: ~99.5% in matter groups, the rest malformed singles."""
        n_bad = round(self.n * P_MALFORMED)
        self.target = self.n - n_bad
        while len(self.plan) < self.target:
            self._plan_matter()
        self.plan.truncate(self.target)
        for k in range(n_bad):
            self._plan_malformed(1 + k % (len(MALFORMED) - 1))
        return self.plan

    # -- matters ---------------------------------------------------------------------------
    def _new_matter(self):
        rng, world = self.rng, self.world
        topic = _weighted(rng, world.topic_cum)
        cfg = world.topic_cfg[topic]
        issue = _weighted(rng, cfg["issue_cum"])
        topic2 = issue2 = -1
        if cfg["partners"] and rng.random() < P_TWO_TOPICS:
            topic2 = cfg["partners"][_weighted(rng, cfg["partner_cum"])]
            issue2 = _weighted(rng, world.topic_cfg[topic2]["issue_cum"])
        home = cfg["home_levels"][_weighted(rng, cfg["home_cum"])]
        kind = {"village": VILLAGE, "estate": ESTATE}.get(cfg["place"])
        if kind is None:
            kind = ESTATE if rng.random() < 0.35 else VILLAGE
        if kind == ESTATE:
            estate = _below(rng, len(world.estates))
            township = world.estates[estate][1]
        else:
            township = _below(rng, len(world.townships))
            estate = _pick(rng, world.township_estates[township] or range(len(world.estates)))
        village = _pick(rng, world.township_villages[township])
        if cfg["peak_days"] and rng.random() < P_PEAK_MONTH:
            start = _pick(rng, cfg["peak_days"])
        else:
            start = _weighted(rng, world.day_cum)
        origin = start - 15 - int(rng.random() ** 2 * 2500)   # problems are mostly recent
        matter = self.plan.add_matter(topic=topic, issue=issue, topic2=topic2, issue2=issue2,
                                      home=home, township=township, village=village,
                                      estate=estate, place_kind=kind, origin=origin)
        return matter, start

    def _plan_matter(self):
        rng = self.rng
        matter, start = self._new_matter()
        cfg = self.world.topic_cfg[self.plan.m_topic[matter]]
        u = rng.random()
        if u < P_CAMPAIGN:
            people = _randint(rng, 5, 15)
        elif u < P_CAMPAIGN + P_SAME_MATTER:
            people = _randint(rng, 2, 4)
        else:
            people = 1
        spread = 21 if people >= 5 else 60
        persons = []
        for j in range(people):
            day = start if j == 0 else start + _randint(rng, 1, spread - 1)
            person = -1 if rng.random() < cfg["anonymous"] else self._person(matter, cfg, persons)
            persons.append(person)
            self._plan_thread(matter, person, day, ORIGINAL if j == 0 else SAME, people)
            if len(self.plan) >= self.target:
                return

    def _person(self, matter, cfg, taken):
        """A petitioner for the matter: usually new and local, sometimes a long-term one."""
        rng, plan, world = self.rng, self.plan, self.world
        if len(plan.p_kind) and rng.random() < P_REUSE_PERSON:
            person = _below(rng, len(plan.p_kind))
            if person not in taken:
                return person
        if rng.random() < cfg["local"]:
            kind = plan.m_place_kind[matter]
            township = plan.m_township[matter]
            place = plan.m_estate[matter] if kind == ESTATE else plan.m_village[matter]
        elif rng.random() < 0.9:
            kind = ESTATE if rng.random() < 0.3 else VILLAGE
            items = world.estates if kind == ESTATE else world.villages
            place = _below(rng, len(items))
            township = items[place][1]
        else:
            kind, township = ELSEWHERE, -1
            place = _below(rng, len(world.places["elsewhere"]))
        return plan.add_person(kind=kind, township=township, place=place)

    # -- letters ---------------------------------------------------------------------------
    def _plan_thread(self, matter, person, day, pattern, people):
        """One petitioner's letters on a matter raised by ``people`` petitioners: the first,
        then reworded repeats. A matter several people raise is a complaint (申诉, 举报控告,
        求决) in every letter: people asking a question or making a suggestion about the
        same place are not raising one matter."""
        rng = self.rng
        cfg = self.world.topic_cfg[self.plan.m_topic[matter]]
        nature = _weighted(rng, cfg["complaint_nature_cum" if people > 1 else "nature_cum"])
        complaint = NATURES[nature] not in SOFT_NATURES
        joint = person >= 0 and complaint and rng.random() < cfg["joint"] * (3 if people >= 5 else 1)
        repeats = 0
        if person >= 0 and complaint and rng.random() < P_REPEAT:
            repeats = _pick(rng, (1, 1, 1, 2, 2, 3))
        prev, escalation = -1, 0
        for _ in range(repeats + 1):
            if day >= N_DAYS or len(self.plan) >= self.target:
                return
            letter = self._add_base(matter, person, day, pattern, prev, nature, joint, escalation)
            self._add_copies(letter, escalation)
            prev, pattern = letter, REPEAT
            day += _randint(rng, 14, 84)
            escalation += rng.random() < P_ESCALATE

    def _add_base(self, matter, person, day, pattern, prev, nature, joint, escalation):
        rng, plan = self.rng, self.plan
        channel = _weighted(rng, self.channel_cum)
        if person < 0 and channel == VISIT:
            channel = LETTER                            # visitors are always registered
        level = self._level(plan.m_home[matter], channel, escalation)
        visitors = signatories = 0
        if channel == VISIT:
            if joint or rng.random() < P_COLLECTIVE_VISIT:
                visitors = 5 + int(rng.random() ** 2 * 45)
            else:
                visitors = 1 if rng.random() < 0.65 else _randint(rng, 2, 4)
        elif joint and channel != PHONE:
            signatories = 3 + int(rng.random() ** 3 * 80)
        index = len(plan)
        return plan.add_letter(day=day, sec=self._second(channel), matter=matter, person=person,
                               text_src=index, prev=prev, pattern=pattern, channel=channel,
                               body=self._body(level, channel, matter), nature=nature,
                               signatories=signatories, visitors=visitors, malformed=0)

    def _add_copies(self, source, escalation):
        """Maybe add exact copies, 一信多投 copies or a resend of letter ``source``."""
        rng, plan = self.rng, self.plan
        if plan.channel[source] in (VISIT, PHONE):
            return
        u, day = rng.random(), plan.day[source]
        if u < P_MULTI:
            used = {plan.body[source]}
            for _ in range(_pick(rng, (1, 1, 1, 2, 2, 3))):
                channel = _pick(rng, (LETTER, LETTER, ONLINE, MAILBOX))
                level = self._level(plan.m_home[plan.matter[source]], channel, escalation + 1)
                body = self._body(level, channel, plan.matter[source])
                if body not in used:
                    used.add(body)
                    self._add_copy(source, MULTI, day + _randint(rng, 0, 10), channel, body)
        elif u < P_MULTI + P_EXACT:
            channel, body = plan.channel[source], plan.body[source]
            if rng.random() < 0.5:
                channel = _pick(rng, (LETTER, ONLINE))
                level = self._level(plan.m_home[plan.matter[source]], channel, escalation + 1)
                body = self._body(level, channel, plan.matter[source])
            self._add_copy(source, EXACT, day + _randint(rng, 0, 7), channel, body)
        elif u < P_MULTI + P_EXACT + P_RESEND:
            self._add_copy(source, RESEND, day + _randint(rng, 7, 60), plan.channel[source],
                           plan.body[source])

    def _add_copy(self, source, pattern, day, channel, body):
        plan = self.plan
        if day >= N_DAYS or len(plan) >= self.target:
            return
        plan.add_letter(day=day, sec=self._second(channel), matter=plan.matter[source],
                        person=plan.person[source], text_src=source, prev=source,
                        pattern=pattern, channel=channel, body=body, nature=plan.nature[source],
                        signatories=plan.signatories[source], visitors=0, malformed=0)

    def _plan_malformed(self, kind):
        """A standalone letter that ingest must quarantine or warn about."""
        matter, day = self._new_matter()
        cfg = self.world.topic_cfg[self.plan.m_topic[matter]]
        person = -1 if self.rng.random() < cfg["anonymous"] else self._person(matter, cfg, [])
        letter = self._add_base(matter, person, min(day, N_DAYS - 1), ORIGINAL, -1,
                                _weighted(self.rng, cfg["nature_cum"]), False, 0)
        self.plan.malformed[letter] = kind

    # -- draws -----------------------------------------------------------------------------
    def _level(self, home, channel, escalation):
        """Addressee level: mostly the county, never below the matter's home level."""
        rng = self.rng
        weights = [w if (level >= home and (level > TOWNSHIP or home == TOWNSHIP)) else 0
                   for level, w in enumerate(LEVEL_WEIGHTS[channel])]
        level = _weighted(rng, _cumulative(weights))
        for _ in range(escalation):
            if level + 1 < len(weights) and weights[level + 1] and rng.random() < 0.5:
                level += 1
        return level

    def _body(self, level, channel, matter):
        plan, world = self.plan, self.world
        if level == TOWNSHIP:
            return _pick(self.rng, world.township_bodies[plan.m_township[matter]])
        return _pick(self.rng, world.candidates(level, channel, plan.m_topic[matter]))

    def _second(self, channel):
        """Time of day: office hours for registered items, any time for online messages."""
        rng = self.rng
        if channel in (ONLINE, MAILBOX):
            return int(rng.triangular(0, 86399, 72000))
        return _randint(rng, 8 * 3600 + 1800, 17 * 3600 + 1800)


def plan_letters(world, n, seed):
    """Plan ``n`` letters (no text yet) from ``seed``; returns a `Plan`."""
    return _Planner(world, seed, n).run()


# ======================================================================================
# Render
# ======================================================================================
class _Multi:
    """A section made of several distinct entries of one bank (facts, timeline, ...).

    ``part[0]`` is the section name, like the (name, text) tuples of single sections.
    """

    def __init__(self, name, bank, rng, slots=None):
        self.name, self.bank, self.items = name, bank, []
        self.slots = slots                      # per-entry slot values (timeline)
        self.pool = list(range(len(bank)))
        self.left = len(bank) if slots is None else min(len(bank), len(slots))

    def __getitem__(self, index):
        return (self.name, self.items)[index]

    def add(self, rng, banks, ctx):
        """Render one more entry; returns its length (0 when the bank is used up)."""
        if not self.left:
            return 0
        self.left -= 1
        pool = self.pool            # draw without replacement: swap a random entry to the end
        k = int(rng.random() * len(pool))
        pool[k], pool[-1] = pool[-1], pool[k]
        if self.slots is not None:
            ctx = {**ctx, **self.slots[len(self.items)]}
        text = expand(self.bank[pool.pop()], rng, banks).format_map(ctx)
        self.items.append(text)
        return len(text)


class _Renderer:
    """Turns plan rows into register rows and truth rows; pure function of (seed, plan)."""

    def __init__(self, world, plan, seed):
        self.world, self.plan, self.seed = world, plan, seed
        self.places = world.places

    # -- matter and person facts -------------------------------------------------------------
    def matter_facts(self, matter):
        """Names and numbers of a matter, the same in every letter about it."""
        rng = random.Random(_seed(self.seed, MATTER_STREAM, matter))
        plan, world, places = self.plan, self.world, self.places
        topic = plan.m_topic[matter]
        cfg = world.topic_cfg[topic]
        home = plan.m_home[matter]
        township = world.townships[plan.m_township[matter]]
        hospitals = places["hospitals"]["city" if home >= CITY else "county"]
        return {
            "township": township,
            "village": world.villages[plan.m_village[matter]][0],
            "estate": world.estates[plan.m_estate[matter]][0],
            "place_kind": plan.m_place_kind[matter],
            "group": _below(rng, len(places["group_numerals"])),
            "road": _pick(rng, places["roads"]), "road2": _pick(rng, places["roads"]),
            "company": _pick(rng, places["companies"]),
            "developer": _pick(rng, places["developers"]),
            "factory": _pick(rng, places["factories"]), "soe": _pick(rng, places["soes"]),
            "property": _pick(rng, places["properties"]), "shop": _pick(rng, places["shops"]),
            "school": _pick(rng, places["schools"]), "hospital": _pick(rng, hospitals),
            "project": _pick(rng, places["projects"]),
            "official": self._random_name(rng), "party": self._random_name(rng),
            "role": _pick(rng, cfg["roles"]),
            "case_year": _day(plan.m_origin[matter]).year,
            "case_n": _randint(rng, 100, 4999),
            "case_kind": _pick(rng, ("民初", "民初", "执", "民终")),
            "doc_year": _randint(rng, 2012, 2022), "doc_n": _randint(rng, 3, 68),
            "amount": _log_uniform(rng, 50_000, 8_000_000, 100),
            "amount_small": _log_uniform(rng, 300, 30_000, 10),
            "price_mu": _log_uniform(rng, 18_000, 96_000, 100),
            "area": _randint(rng, 3, 600), "area_m2": _randint(rng, 45, 380),
            "households": _randint(rng, 3, 150), "workers": _randint(rng, 5, 120),
            "pct": round(1.5 + rng.random() * 40, 1),
            "dept": cfg["dept"]["city" if home >= CITY else "county"],
        }

    def _random_name(self, rng):
        male = rng.random() < 0.75
        given = self.places["given_male" if male else "given_female"]
        return _pick(rng, self.places["surnames"]), _pick(rng, given)

    def person_facts(self, person):
        """A petitioner: name, gender, birth date, ID number, mobile, address parts."""
        rng = random.Random(_seed(self.seed, PERSON_STREAM, person))
        places, plan = self.places, self.plan
        male = rng.random() < 0.62
        surname = _pick(rng, places["surnames"])
        given = _pick(rng, places["given_male" if male else "given_female"])
        birth = dt.date(1940 + int(rng.triangular(0, 62, 22)), _randint(rng, 1, 12),
                        _randint(rng, 1, 28))
        kind = plan.p_kind[person]
        region = _pick(rng, places["id_regions"]["elsewhere" if kind == ELSEWHERE else "county"])
        sequence = f"{_below(rng, 100):02d}{_below(rng, 5) * 2 + (1 if male else 0)}"
        body17 = f"{region}{birth:%Y%m%d}{sequence}"
        return {
            "surname": surname, "given": given, "male": male, "birth": birth,
            "idno": body17 + id_checksum(body17),
            "phone": _pick(rng, places["mobile_prefixes"]) + f"{_below(rng, 10 ** 8):08d}",
            "kind": kind, "township": plan.p_township[person], "place": plan.p_place[person],
            "group": _below(rng, len(places["group_numerals"])),
            "house": _randint(rng, 1, 88), "room": (_randint(rng, 1, 18), _randint(rng, 1, 4),
                                                  _randint(rng, 1, 26), _randint(rng, 1, 4)),
            "my_area": round(0.5 + rng.random() * 7.5, 1),
            "my_amount": _log_uniform(rng, 3_000, 200_000, 100),
        }

    def _addresses(self, person):
        """(short home phrase, full address) of a petitioner."""
        world, places = self.world, self.places
        numerals = places["group_numerals"]
        if person["kind"] == ELSEWHERE:
            village = world.villages[person["place"] % len(world.villages)][0]
            home = places["elsewhere"][person["place"]]
            return home, f"{home}{village}{numerals[person['group']]}组"
        township = world.townships[person["township"]]
        if person["kind"] == ESTATE:
            estate = world.estates[person["place"]][0]
            building, unit, floor, room = person["room"]
            return (f"{township}{estate}",
                    f"{places['county']}{township}{estate}{building}栋{unit}单元{floor}0{room}室")
        village = world.villages[person["place"]][0]
        return (f"{township}{village}",
                f"{places['county']}{township}{village}{numerals[person['group']]}组{person['house']}号")

    # -- names as written ------------------------------------------------------------------
    def _masked(self, surname, given, rng, full_share):
        if rng.random() < full_share:
            return surname + given
        return _pick(rng, self.places["name_masks"]).format(s=surname)

    # -- context ---------------------------------------------------------------------------
    def _context(self, src, rng, facts, person, banks):
        """Every slot value for rendering letter ``src``'s text."""
        plan, world, places = self.plan, self.world, self.places
        day, origin = plan.day[src], plan.m_origin[plan.matter[src]]
        group = places["group_numerals"][facts["group"]]
        township = facts["township"]
        if facts["place_kind"] == ESTATE:
            place = _pick(rng, (f"{township}{facts['estate']}", f"{facts['estate']}小区"))
        else:
            place = _pick(rng, (f"{township}{facts['village']}", facts["village"],
                                f"{places['county']}{township}{facts['village']}"))
        home_level = plan.m_home[plan.matter[src]]
        gov = {TOWNSHIP: _township_gov(township), COUNTY: f"{places['county']}人民政府"}.get(
            home_level, f"{places['city']}人民政府")
        court = (f"{places['city']}中级人民法院" if home_level >= CITY
                 else f"{places['county']}人民法院")
        station = township[:-2] if township.endswith("街道") else township[:-1]
        ctx = {
            "province": places["province"], "city": places["city"], "county": places["county"],
            "township": township, "village": facts["village"], "estate": facts["estate"],
            "group": _pick(rng, (f"{group}组", f"第{group}村民小组", f"{facts['group'] + 1}组")),
            "road": facts["road"], "road2": facts["road2"], "place": place,
            "company": facts["company"], "developer": facts["developer"],
            "factory": facts["factory"], "soe": facts["soe"], "property": facts["property"],
            "shop": facts["shop"], "school": facts["school"], "hospital": facts["hospital"],
            "station": f"{station}派出所", "project": facts["project"], "court": court,
            "gov": gov, "dept": facts["dept"], "role": facts["role"],
            "official": self._masked(*facts["official"], rng, 0.65),
            "party": self._masked(*facts["party"], rng, 0.4),
            "case_no": (f"（{facts['case_year']}）{places['county_abbr']}{facts['case_kind']}"
                        f"字第{facts['case_n']}号" if rng.random() < 0.3 else
                        f"（{facts['case_year']}）江{places['court_code']}{facts['case_kind']}"
                        f"{facts['case_n']}号"),
            "doc_no": f"{places['county_abbr']}政发〔{facts['doc_year']}〕{facts['doc_n']}号",
            "amount": _money(facts["amount"], rng),
            "amount_small": _money(facts["amount_small"], rng),
            "price_mu": str(facts["price_mu"]), "area": str(facts["area"]),
            "area_m2": str(facts["area_m2"]), "households": str(facts["households"]),
            "workers": str(facts["workers"]), "pct": f"{facts['pct']:g}",
            "origin": _cn_date(origin, rng) if rng.random() < 0.7 else f"{_day(origin).year}年",
            "origin_year": str(_day(origin).year),
            "addressee": world.bodies[plan.body[src]][0],
            "date": _cn_date(day),
            "duration": _duration(day - origin, rng),
            "visitors": str(plan.visitors[src]), "signatories": str(plan.signatories[src]),
        }
        prev = plan.prev[src]
        ctx["prev_date"] = _cn_date(plan.day[prev], rng) if prev >= 0 else ""
        ctx["prev_addressee"] = world.bodies[plan.body[prev]][0] if prev >= 0 else ""
        collective = plan.signatories[src] or plan.visitors[src] >= 5
        if person is None:
            ctx.update(name="", gender="", age=str(_randint(rng, 35, 75)), home=place, address="",
                       phone="", idno="",
                       my_area=f"{round(0.5 + rng.random() * 7.5, 1):g}",
                       my_amount=_money(_log_uniform(rng, 3_000, 200_000, 100), rng))
            ctx["我"] = "我们" if collective or rng.random() < 0.5 else "我"
            ctx["spouse"] = _pick(rng, ("丈夫", "妻子", "老伴"))
        else:
            home, address = self._addresses(person)
            ctx.update(name=self._masked(person["surname"], person["given"], rng, 0.6),
                       gender="男" if person["male"] else "女",
                       age=str(_day(day).year - person["birth"].year), home=home,
                       address=address, phone=person["phone"], idno=person["idno"],
                       my_area=f"{person['my_area']:g}",
                       my_amount=_money(person["my_amount"], rng))
            ctx["我"] = "我们" if collective else "我"
            ctx["spouse"] = "老伴" if rng.random() < 0.3 else "妻子" if person["male"] else "丈夫"
        ctx["signlist"] = self._signlist(ctx["name"], plan.signatories[src], rng)
        ctx["theme"] = expand(banks["theme"], rng, banks)
        ctx["when"] = ctx["where"] = ""           # set per timeline entry
        return ctx

    def _signlist(self, lead, count, rng):
        if not count:
            return ""
        names = [lead] if lead else []
        while len(names) < min(count, 12):
            names.append("".join(self._random_name(rng)))
        return "、".join(names) + ("等" if count > 12 else "")

    # -- composition -----------------------------------------------------------------------
    def compose(self, src, pfacts):
        """Render the text of plan letter ``src`` (``pfacts``: its petitioner or None).

        Returns (title, head, main, tail, flags, rng): head is the salutation line, main the
        paragraphs, tail the closing lines; rng continues the text stream (for quirks).
        """
        plan, world = self.plan, self.world
        rng = random.Random(_seed(self.seed, TEXT_STREAM, src))
        matter = plan.matter[src]
        topic, nature = plan.m_topic[matter], plan.nature[src]
        banks = world.banks[topic][plan.m_issue[matter]][nature]
        person = plan.person[src]
        facts = self.matter_facts(matter)
        ctx = self._context(src, rng, facts, pfacts, banks)
        record = plan.channel[src] in (VISIT, PHONE)
        flags = {
            "anonymous": person < 0, "record": record, "repeat": plan.pattern[src] == REPEAT,
            "joint": plan.signatories[src] > 0, "phone": plan.channel[src] == PHONE,
            "group_visit": plan.visitors[src] > 1,
            "second": (plan.m_topic2[matter], plan.m_issue2[matter]),
            "ids": person >= 0 and rng.random() < P_IDS_IN_TEXT,
            "traditional": rng.random() < P_TRADITIONAL,
        }
        kind = NATURES[nature] if NATURES[nature] in SOFT_NATURES else "complaint"
        family = "record" if record else "letter"
        structure = _pick(rng, world.structures[(family, kind)])
        target = self._target_length(rng, kind, record)
        history = self._history(src, rng)
        head, main, tail = self._sections(structure, kind, rng, banks, ctx, flags, target, history)
        title_bank = "title_repeat" if flags["repeat"] and rng.random() < 0.5 else "title"
        title = expand(banks[title_bank], rng, banks).format_map(ctx)
        flags["ids_in_text"] = person >= 0 and any(
            pfacts[key] in text for key in ("phone", "idno") for text in (head, main, tail))
        return title, head, main, tail, flags, rng

    @staticmethod
    def _target_length(rng, kind, record):
        median = {"咨询": 150, "意见建议": 240}.get(kind, 440) * (0.6 if record else 1.0)
        return max(BODY_MIN + 20, min(BODY_CAP, int(rng.lognormvariate(math.log(median), 0.5))))

    def _history(self, src, rng):
        """Slot values for timeline entries: [{when, where}] in date order, before the letter."""
        plan, world = self.plan, self.world
        matter = plan.matter[src]
        origin, day = plan.m_origin[matter], plan.day[src]
        if day - origin < 60:
            return []
        places = world.history_places[plan.m_topic[matter]]
        township = _township_gov(world.townships[plan.m_township[matter]])
        days = sorted(origin + 1 + _below(rng, day - origin - 1) for _ in range(8))
        return [{"when": _cn_date(d, rng),
                 "where": township if rng.random() < 0.25 else _pick(rng, places)}
                for d in days]

    def _sections(self, structure, kind, rng, banks, ctx, flags, target, history):
        """Fill a structure: single sections first, then multi sections up to ``target``."""
        parts = []                     # (name, text) or _Multi
        for entry in self._flatten(structure, rng):
            name, prob = entry
            if prob < 1.0 and rng.random() >= prob:
                continue
            if name in MULTI_SECTIONS:
                bank = banks[{"asks": "ask", "suggests": "suggest"}.get(name, name)]
                parts.append(_Multi(name, bank, rng, history if name == "timeline" else None))
                continue
            text = self._single(name, rng, banks, ctx, flags)
            if text:
                parts.append((name, text))
        filler = "more" if kind == "complaint" else "more_ask"
        self._fill(parts, rng, banks, ctx, target, filler)
        return self._join(parts, rng, flags)

    @staticmethod
    def _flatten(structure, rng):
        for entry in structure:
            if isinstance(entry, list):
                yield from rng.sample(entry, len(entry))
            else:
                yield entry

    def _single(self, name, rng, banks, ctx, flags):
        """One section's text, or '' when the section does not apply to this letter."""
        if name == "prev" or name == "urge":
            if not flags["repeat"]:
                return ""
        elif name == "second":
            topic2, issue2 = flags["second"]
            if topic2 < 0:
                return ""
            banks = self.world.banks[topic2][issue2][NATURES.index("求决")]
            name = "core"
        elif name == "idline" and not flags["ids"]:
            return ""
        elif name == "joint" and not flags["joint"]:
            return ""
        elif name == "frame":
            name = ("frame_phone_anon" if flags["anonymous"] else "frame_phone") if flags["phone"] \
                else ("frame_group" if flags["group_visit"] else "frame")
        elif name in ("intro", "signoff"):
            if flags["anonymous"]:
                name += "_anon"
            elif flags["joint"] and rng.random() < 0.6:
                name += "_group"
        if name not in banks:
            return ""
        return expand(banks[name], rng, banks).format_map(ctx)

    @staticmethod
    def _fill(parts, rng, banks, ctx, target, filler):
        """Add entries to the multi sections until the letter reaches ``target`` chars.

        Every multi section of the topic (facts, asks, suggests) gets one entry and grows
        first; then the timeline and the generic fillers, capped so long letters are not
        all boilerplate (see FILLERS); a letter over the cap loses entries, one under the
        minimum gets ``filler`` entries.
        """
        multis = [part for part in parts if type(part) is _Multi]
        length = sum(len(part[1]) for part in parts if type(part) is tuple)
        primary = [part for part in multis if part.name not in SECONDARY_SECTIONS]
        base, over, per = FILLERS
        caps = {"timeline": 1 + max(0, target - 300) // 150,
                "more": base + max(0, target - over) // per}
        caps["more_ask"] = caps["more"]
        for part in primary:
            length += part.add(rng, banks, ctx)
        while length < target:
            grown = [part.add(rng, banks, ctx) for part in primary if length < target]
            if not any(grown):
                break
            length += sum(grown)
        for part in multis:
            while part.name in caps and length < target and len(part.items) < caps[part.name]:
                added = part.add(rng, banks, ctx)
                if not added:
                    break
                length += added
        while length > BODY_CAP:
            longest = max(multis, key=lambda part: len(part.items), default=None)
            if longest is None or len(longest.items) <= 1:
                break
            length -= len(longest.items.pop())
        if length < BODY_MIN + 10:
            more = _Multi(filler, banks[filler], rng)
            parts.append(more)
            while length < BODY_MIN + 10:
                added = more.add(rng, banks, ctx)
                if not added:
                    break
                length += added

    def _join(self, parts, rng, flags):
        """(head, main, tail): salutation line, paragraphs, closing lines."""
        head = ""
        if parts and parts[0][0] == "salutation":
            head = parts.pop(0)[1]
        tail_names = ("closing", "thanks", "joint", "signoff")
        tail = "\n".join(part[1] for part in parts if part[0] in tail_names)
        body = [part for part in parts if part[0] not in tail_names]
        if flags["record"]:
            sep = "" if rng.random() < 0.8 else "\n"
        else:
            sep = _pick(rng, ("\n", "\n", "\n", "", "", "\n\n"))
        paragraphs = []
        for part in body:
            if type(part) is tuple:
                paragraphs.append(part[1])
            elif part.items:
                items = part.items
                step = 3 if sep and len(items) > 4 else len(items)
                paragraphs += ["".join(items[k:k + step]) for k in range(0, len(items), step)]
        if sep == "\n" and rng.random() < 0.35:
            paragraphs = ["　　" + p for p in paragraphs]
        return head, sep.join(paragraphs), tail

    # -- copies, quirks --------------------------------------------------------------------
    def edit(self, letter, head, main, tail, rng):
        """Tiny edits that make a 一信多投 copy or a resend differ from its source."""
        plan, world, edits = self.plan, self.world, self.world.edits
        ctx = {"addressee": world.bodies[plan.body[letter]][0], "date": _cn_date(plan.day[letter]),
               "prev_date": _cn_date(plan.day[plan.prev[letter]])}
        say = lambda bank: expand(_pick(rng, edits[bank]), rng, {}).format_map(ctx)
        if plan.pattern[letter] == MULTI:
            head = say("salutation")
            if rng.random() < 0.4:
                tail = (tail + "\n" if tail else "") + say("dated")
        else:
            if rng.random() < 0.6:
                note = say("resend")
                main = note + "\n" + main if rng.random() < 0.5 else main + "\n" + note
            else:
                tail = (tail + "\n" if tail else "") + say("dated")
        if rng.random() < 0.3:
            old, new = _pick(rng, PUNCT_SWAPS)
            main = main.replace(old, new, _randint(rng, 1, 3))
        return head, main, tail

    def quirks(self, body, rng, channel):
        """Text quirks of real material, drawn from the text stream (copies share them)."""
        rates = QUIRK_RATES
        draws = {name: rng.random() for name in rates}
        if draws["decimal"] < rates["decimal"]:
            body = DECIMAL_RE.sub(r"\1、\2", body)
        if draws["fullwidth"] < rates["fullwidth"]:
            body = body.translate(FULLWIDTH)
        if draws["halfwidth"] < rates["halfwidth"]:
            body = body.translate(HALFWIDTH_PUNCT)
        if draws["break"] < rates["break"]:
            match = CJK.search(body, int(len(body) * (0.2 + 0.6 * rng.random())))
            if match:
                body = body[:match.start() + 1] + "\n" + body[match.start() + 1:]
        online = channel in (ONLINE, MAILBOX)
        if channel == ONLINE and draws["boilerplate"] < rates["boilerplate"]:
            line = expand(_pick(rng, self.world.boilerplate), rng, {}).format_map(
                {"date": _cn_date(int(rng.random() * N_DAYS))})
            body = body + "\n" + line if rng.random() < 0.6 else line + "\n" + body
        if draws["mojibake"] < rates["mojibake"]:
            start = int(rng.random() * max(1, len(body) - 8))
            garbled = body[start:start + 6].encode("gbk", "replace").decode("utf-8", "replace")
            body = body[:start] + garbled + body[start + 6:]
        if draws["html"] < (rates["html"] if online else rates["html"] / 8):
            body = "\n\t\t\t" + body + "\n\t\t"
        return body

    # -- register fields -------------------------------------------------------------------
    def register_fields(self, letter, facts, rng):
        """(name, ID number, phone, address) as the register shows them."""
        plan = self.plan
        if facts is None:
            return _pick(rng, self.places["anonymous_names"]), "", "", ""
        name = self._masked(facts["surname"], facts["given"], rng, 0.55)
        show_id = rng.random() < 0.7
        show_phone = rng.random() < (0.95 if plan.channel[letter] == PHONE else 0.8)
        if not (show_id or show_phone):
            show_phone = True
        home, address = self._addresses(facts)
        if rng.random() < 0.2:
            address = "" if rng.random() < 0.5 else home
        elif rng.random() < 0.15 and facts["kind"] != ELSEWHERE:
            address = self.places["province"] + self.places["city"] + address
        return (name, facts["idno"] if show_id else "", facts["phone"] if show_phone else "",
                address)

    @staticmethod
    def date_text(day, sec, channel, rng, bad):
        """来信日期 in one of the forms offices export, or an impossible date."""
        d = _day(day)
        if bad:
            return _pick(rng, (f"{d.year}年13月{d.day}日", f"{d.year}年{d.month}月45日",
                               f"{d.year}-02-30", f"{d.year}/0/{d.day}", f"{d.year}.14.03"))
        online = channel in (ONLINE, MAILBOX)
        form = _weighted(rng, (0.7, 0.9, 1.0) if online else (0.2, 0.65, 1.0))
        if form == 0:
            return f"{d.year}/{d.month}/{d.day} {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
        if form == 1:
            return f"{d:%Y-%m-%d}"
        return f"{d.year}年{d.month}月{d.day}日"

    # -- one letter --------------------------------------------------------------------------
    def render(self, letter, letter_id):
        """(register row, truth row, body digest) of plan letter ``letter``."""
        plan, world = self.plan, self.world
        src = plan.text_src[letter]
        own = random.Random(_seed(self.seed, OWN_STREAM, letter))
        person = plan.person[letter]
        pfacts = self.person_facts(person) if person >= 0 else None
        title, head, main, tail, flags, text_rng = self.compose(src, pfacts)
        if plan.pattern[letter] in (MULTI, RESEND):
            head, main, tail = self.edit(letter, head, main, tail, own)
        body = "\n".join(part for part in (head, main, tail) if part)
        body = self.quirks(body, text_rng, plan.channel[src])
        name, idno, phone, address = self.register_fields(letter, pfacts, own)
        if flags["traditional"]:
            convert = world.s2t.convert
            title, body, name, address = convert(title), convert(body), convert(name), convert(address)
        malformed = MALFORMED[plan.malformed[letter]]
        if malformed == "empty_text":
            title = body = ""
        channel = "传真" if malformed == "unknown_channel" else CHANNELS[plan.channel[letter]]
        addressee, level = world.bodies[plan.body[letter]]
        matter = plan.matter[letter]
        home = plan.m_home[matter]
        row = (letter_id, self.date_text(plan.day[letter], plan.sec[letter], plan.channel[letter],
                                         own, malformed == "bad_date"),
               channel, name, idno, phone, address, addressee, LEVELS[level], title, body,
               plan.signatories[letter] or "", plan.visitors[letter] or "")
        topics = [world.topics[plan.m_topic[matter]]]
        if plan.m_topic2[matter] >= 0:
            topics.append(world.topics[plan.m_topic2[matter]])
        truth = (letter_id, "|".join(topics), NATURES[plan.nature[letter]], f"M{matter:07d}",
                 f"P{person:07d}" if person >= 0 else "", int(person < 0),
                 plan.signatories[letter], plan.visitors[letter],
                 int(flags["traditional"] and malformed != "empty_text"),
                 int(flags["ids_in_text"] and malformed != "empty_text"),
                 LEVELS[home], int(level > max(home, COUNTY)), PATTERNS[plan.pattern[letter]],
                 malformed)
        digest = int.from_bytes(hashlib.blake2b(body.encode(), digest_size=8).digest(), "little")
        return row, truth, digest


# ======================================================================================
# Order, numbering, pairs
# ======================================================================================
def file_order(plan):
    """Plan indexes in file order: by date and time, ties by plan index."""
    day = np.frombuffer(plan.day, dtype=np.int32)
    sec = np.frombuffer(plan.sec, dtype=np.int32)
    return np.lexsort((np.arange(len(plan)), sec, day))


class LetterIds:
    """信件编号 by file position: XF<year>-<number within the year>.

    Positions are in date order, so 2024's letters come first. A duplicate_id row reuses
    the number of an earlier letter that is in no planted pair, so truth pairs stay
    unambiguous (kept in a small override table).
    """

    def __init__(self, plan, order, seed):
        first_2025 = (dt.date(2025, 1, 1) - FIRST_DAY).days
        days = np.frombuffer(plan.day, dtype=np.int32)[order]
        self.n_2024 = int(np.searchsorted(days, first_2025))
        matter = np.frombuffer(plan.matter, dtype=np.int32)[order]
        malformed = np.frombuffer(plan.malformed, dtype=np.int32)[order]
        alone = np.flatnonzero((np.bincount(matter)[matter] == 1) & (malformed == 0))
        rng = random.Random(_seed(seed, OWN_STREAM, 2 ** 32 - 1))
        self.reused = {}
        for position in np.flatnonzero(malformed == MALFORMED.index("duplicate_id")):
            earlier = alone[: np.searchsorted(alone, position)]
            if len(earlier):
                self.reused[int(position)] = self.own(int(_pick(rng, earlier)))

    def own(self, position):
        if position < self.n_2024:
            return f"XF2024-{position + 1:06d}"
        return f"XF2025-{position - self.n_2024 + 1:06d}"

    def __getitem__(self, position):
        return self.reused.get(position) or self.own(position)


RELATIONS = ("exact_copy", "multi_addressed", "resend", "repeat_petition", "same_matter")


def truth_pairs(plan, order, digests):
    """Every pair of letters of one matter with its relation (see module docstring).

    Returns int arrays (position_a, position_b, relation index), sorted by a then b.
    """
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    matter = np.frombuffer(plan.matter, dtype=np.int32)
    keep = np.frombuffer(plan.malformed, dtype=np.int32) == 0
    by_matter = np.lexsort((position, matter))
    by_matter = by_matter[keep[by_matter]]
    bounds = np.flatnonzero(np.diff(matter[by_matter])) + 1
    first, second, relation = array.array("i"), array.array("i"), array.array("b")
    for group in np.split(by_matter, bounds):
        for j in range(1, len(group)):
            b = int(group[j])
            for k in range(j):
                a = int(group[k])
                first.append(position[a])
                second.append(position[b])
                relation.append(_relation(plan, a, b, digests))
    first, second = np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)
    ranked = np.lexsort((second, first))
    return first[ranked], second[ranked], np.array(relation, dtype=np.int8)[ranked]


def _relation(plan, a, b, digests):
    """Relation index (RELATIONS) of plan letters a (earlier) and b, by precedence."""
    if plan.text_src[a] == plan.text_src[b]:
        if digests[a] == digests[b]:
            return 0
        if plan.body[a] != plan.body[b] and plan.day[b] - plan.day[a] <= 30:
            return 1
        return 2
    if plan.person[a] >= 0 and plan.person[a] == plan.person[b]:
        return 3
    return 4


# ======================================================================================
# Writing
# ======================================================================================
class _LetterWriter:
    """Chunked writer of the letters file: CSV (UTF-8 with BOM) or parquet."""

    def __init__(self, path):
        self.path = Path(path)
        self.parquet = self.path.suffix.lower() == ".parquet"
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq
            self.pa = pa
            fields = [(name, pa.int32() if name in ("联名人数", "来访人数") else pa.string())
                      for name in HEADERS]
            self.schema = pa.schema(fields)
            self.writer = pq.ParquetWriter(self.path, self.schema)
        else:
            self.file = self.path.open("w", encoding="utf-8-sig", newline="")
            self.writer = csv.writer(self.file, lineterminator="\n")
            self.writer.writerow(HEADERS)

    def write(self, rows):
        if not self.parquet:
            self.writer.writerows(rows)
            return
        columns = list(zip(*rows))
        arrays = [self.pa.array([v if v != "" else None for v in column], type=field.type)
                  if field.type == self.pa.int32() else self.pa.array(column, type=field.type)
                  for column, field in zip(columns, self.schema)]
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self):
        (self.writer if self.parquet else self.file).close()


def _csv_writer(path, header):
    handle = Path(path).open("w", encoding="utf-8-sig", newline="")
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    return handle, writer


def generate(n, seed, out, truth_dir=None, progress=None, world=None):
    """Generate ``n`` letters from ``seed`` into ``out`` and the truth files.

    Parameters
    ----------
    n, seed : int
    out : str or Path
        ``.csv`` (UTF-8 with BOM) or ``.parquet``.
    truth_dir : str or Path, optional
        Folder for truth_letters.csv and truth_pairs.csv; defaults to ``out``'s folder.
    progress : bool, optional
        Show a progress bar; by default only for n >= 20,000.
    world : World, optional
        Preloaded banks (tests reuse one).

    Returns
    -------
    collections.Counter
        Letters, pairs, and counts per pattern, malformed reason, relation and feature.
    """
    world = world or load_world()
    out = Path(out)
    truth_dir = Path(truth_dir) if truth_dir else out.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_letters(world, n, seed)
    order = file_order(plan)
    ids = LetterIds(plan, order, seed)
    renderer = _Renderer(world, plan, seed)
    digests = np.zeros(len(plan), dtype=np.uint64)
    summary = Counter(letters=len(plan))
    letters = _LetterWriter(out)
    handle, truth = _csv_writer(truth_dir / "truth_letters.csv", TRUTH_LETTER_COLUMNS)
    show = progress if progress is not None else n >= 20_000
    with handle, tqdm(total=len(plan), disable=not show, unit="letter", file=sys.stderr) as bar:
        for start in range(0, len(plan), CHUNK):
            rows, truth_rows = [], []
            for position in range(start, min(start + CHUNK, len(plan))):
                index = int(order[position])
                row, truth_row, digests[index] = renderer.render(index, ids[position])
                rows.append(row)
                truth_rows.append(truth_row)
                _count(summary, truth_row)
            letters.write(rows)
            truth.writerows(truth_rows)
            bar.update(len(rows))
    letters.close()
    first, second, relation = truth_pairs(plan, order, digests)
    handle, pairs = _csv_writer(truth_dir / "truth_pairs.csv", TRUTH_PAIR_COLUMNS)
    with handle:
        pairs.writerows((ids[a], ids[b], RELATIONS[r])
                        for a, b, r in zip(first.tolist(), second.tolist(), relation.tolist()))
    summary["pairs"] = len(first)
    summary.update({f"relation {name}": int((relation == k).sum())
                    for k, name in enumerate(RELATIONS)})
    return summary


def _count(summary, truth_row):
    """Add one truth row to the running counts."""
    row = dict(zip(TRUTH_LETTER_COLUMNS, truth_row))
    summary[f"pattern {row['pattern']}"] += 1
    if row["malformed"]:
        summary[f"malformed {row['malformed']}"] += 1
    summary["anonymous"] += row["anonymous"]
    summary["joint letters"] += row["signatories"] > 0
    summary["collective visits (5+)"] += row["visitors"] >= 5
    summary["two topics"] += "|" in row["topics"]
    summary["traditional"] += row["traditional"]
    summary["identifiers in text"] += row["identifiers_in_text"]
    summary["skip level"] += row["skip_level"]


def main(argv=None):
    """Command line: ``python -m pipeline.synth --n N --seed S --out PATH [--truth-dir DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.synth", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, required=True, help="number of letters")
    parser.add_argument("--seed", type=int, required=True, help="random seed")
    parser.add_argument("--out", required=True, help="letters file (.csv or .parquet)")
    parser.add_argument("--truth-dir", help="folder for the truth files (default: --out's folder)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be positive")
    if Path(args.out).suffix.lower() not in (".csv", ".parquet"):
        parser.error("--out must end in .csv or .parquet")
    started = time.perf_counter()
    summary = generate(args.n, args.seed, args.out, args.truth_dir)
    truth_dir = Path(args.truth_dir) if args.truth_dir else Path(args.out).parent
    print(f"wrote {summary['letters']} letters to {args.out}")
    print(f"wrote truth_letters.csv and truth_pairs.csv ({summary['pairs']} pairs) to {truth_dir}")
    keys = ([f"pattern {p}" for p in PATTERNS] + [f"malformed {m}" for m in MALFORMED[1:]]
            + ["anonymous", "joint letters", "collective visits (5+)", "two topics",
               "traditional", "identifiers in text", "skip level"])
    for key in keys:
        print(f"  {key:28s} {summary[key]:8d}  {100 * summary[key] / summary['letters']:5.1f}%")
    for name in RELATIONS:
        print(f"  pairs {name:22s} {summary['relation ' + name]:8d}")
    print(f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
