"""The world letters are drawn from: the fictional county's places, people's names,
addressees and topics, loaded once from ``corpora/synth/places.yaml`` and ``phrases.yaml``
(and ``training.yaml`` for training corpora).

`load_world` reads the two files and returns a `World`: townships with their villages and
estates, the bodies letters are addressed to (with candidate lists per level, channel kind
and topic), each topic's settings (weights, natures, home levels, peak months, partner
topics) and its compiled phrase banks, the copy edits, web boilerplate and letter
structures. The world holds no randomness; planner and renderer draw from it.
"""
from pathlib import Path

import yaml
from opencc import OpenCC

from pipeline.schema import LEVELS
from pipeline.synth.draws import cumulative, date_of
from pipeline.synth.phrases import (TOPIC_KEYS, compile_bank, compile_structures, generic_banks,
                                    topic_banks)
from pipeline.synth.settings import (CITY, COUNTY, LETTER, MAILBOX, N_DAYS, NATURES, PHONE,
                                     SOFT_NATURES, TOWNSHIP)

SYNTH_DIR = Path(__file__).resolve().parents[2] / "corpora" / "synth"


class World:
    """Everything the generator draws from, built from the parsed ``places.yaml`` and
    ``phrases.yaml`` (``places`` and ``phrases``: the YAML documents as dicts)."""

    def __init__(self, places, phrases):
        self.places = places
        self._load_geography(places)
        self._load_topics(phrases)
        self._load_bodies(places)
        self.edits = {name: compile_bank(bank, f"edits.{name}")
                      for name, bank in phrases["edits"].items()}
        self.boilerplate = compile_bank(phrases["web_boilerplate"], "web_boilerplate")
        self.structures = compile_structures(phrases["structures"])
        self.day_cum = cumulative(_day_weights())
        self.s2t = OpenCC("s2t")

    # -- geography -------------------------------------------------------------------------
    def _load_geography(self, places):
        """Townships; villages and estates as (name, township index), with per-township lists."""
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
        generic = generic_banks(phrases["generic"])
        refs = {}                  # id(bank) -> (bank, names it refers to); banks are shared
        self.topics = list(phrases["topics"])
        self.topic_cfg, self.banks = [], []
        for code in self.topics:
            raw = phrases["topics"][code]
            cfg = {key: raw.get(key) for key in TOPIC_KEYS}
            cfg["nature_cum"] = cumulative([raw["natures"].get(n, 0) for n in NATURES])
            cfg["complaint_nature_cum"] = cumulative([raw["natures"].get(n, 0) if n not in SOFT_NATURES else 0
                                                      for n in NATURES])
            cfg["home_levels"] = [LEVELS.index(level) for level in raw["home"]]
            cfg["home_cum"] = cumulative(list(raw["home"].values()))
            cfg["peak_days"] = [d for d in range(N_DAYS)
                                if date_of(d).month in (raw.get("peak_months") or ())]
            cfg["issue_cum"] = cumulative([issue.get("weight", 1)
                                           for issue in raw["issues"].values()])
            self.topic_cfg.append(cfg)
            self.banks.append(topic_banks(code, raw, generic, refs))
        self.topic_cum = cumulative([cfg["weight"] for cfg in self.topic_cfg])
        for cfg in self.topic_cfg:
            cfg["partners"], cfg["partner_cum"] = [], []
        partner_weights = {}
        for first, second, weight in phrases["topic_pairs"]:
            partner_weights.setdefault(first, []).append((self.topics.index(second), weight))
        for code, pairs in partner_weights.items():
            cfg = self.topic_cfg[self.topics.index(code)]
            cfg["partners"] = [t for t, _ in pairs]
            cfg["partner_cum"] = cumulative([w for _, w in pairs])

    # -- addressees ------------------------------------------------------------------------
    def _load_bodies(self, places):
        """Bodies as (name, level); candidate lists per (level, channel kind, topic)."""
        self.bodies = []
        self.township_bodies = []
        for township in self.townships:
            names = [t.format(gov=township_gov(township), township=township)
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


def load_world(directory=SYNTH_DIR, *, training=False):
    """Load and compile ``places.yaml`` and ``phrases.yaml`` from ``directory``.

    With ``training``, the topics and topic pairs of ``training.yaml`` join those of
    ``phrases.yaml`` (after them, so the sample's topic indexes stay): a world covering every
    first-level class of the national classification, for training corpora. The bundled sample
    is drawn without them and stays as it is.
    """
    directory = Path(directory)
    read = lambda name: yaml.safe_load((directory / name).read_text(encoding="utf-8"))
    phrases = read("phrases.yaml")
    if training:
        extra = read("training.yaml")
        clash = sorted(set(extra["topics"]) & set(phrases["topics"]))
        if clash:
            raise ValueError(f"training.yaml: topics already in phrases.yaml: {clash}")
        _reweight(phrases["topics"], extra.get("reweight") or {})
        phrases["topics"].update(extra["topics"])
        phrases["topic_pairs"] += extra.get("topic_pairs", [])
    return World(read("places.yaml"), phrases)


def _reweight(topics, weights):
    """Set the weights of ``training.yaml``'s ``reweight`` ("topic" or "topic.issue": weight)."""
    for key, weight in weights.items():
        code, _, issue = key.partition(".")
        try:
            target = topics[code]["issues"][issue] if issue else topics[code]
        except KeyError:
            raise ValueError(f"training.yaml: reweight names an unknown topic or issue: {key}") from None
        target["weight"] = weight


def township_gov(township):
    """The government of a township: a 街道's 办事处 or a town's 人民政府."""
    return f"{township}办事处" if township.endswith("街道") else f"{township}人民政府"


def _day_weights():
    """Relative letter volume per day: fewer on weekends, more in 2025 (year-on-year rise)."""
    weights = []
    for offset in range(N_DAYS):
        day = date_of(offset)
        weekday = 0.3 if day.weekday() >= 5 else 1.0
        year = 1.0 if day.year == 2024 else 1.09
        season = 1.15 if day.month in (3, 4, 5) else 0.9 if day.month in (8, 10) else 1.0
        weights.append(weekday * year * season)
    return weights
