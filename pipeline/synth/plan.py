"""The plan: which letters exist, who writes them, when, to whom, and how they relate.

`plan_letters` walks matter by matter with a single ``random.Random(seed)`` and fills a
`Plan`: compact integer columns and no text, so a million letters fit in memory. The
renderer (`pipeline.synth.render`) later turns each planned letter into text.

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
Also planted here: anonymous letters, joint letters (联名人数), collective visits (来访人数
>= 5), two-topic matters, long-term petitioners with several matters, escalation to higher
addressees, and ~0.5% malformed rows (empty text, impossible date, unknown channel, reused
信件编号). Text-level features (traditional script, identifiers, quirks) are the renderer's.
"""
import array
import random

from pipeline.synth.draws import below, cumulative, pick, randint, weighted
from pipeline.synth.settings import (CHANNEL_WEIGHTS, ELSEWHERE, ESTATE, EXACT, LETTER,
                                     LEVEL_WEIGHTS, MAILBOX, MALFORMED, MULTI, N_DAYS, NATURES,
                                     ONLINE, ORIGINAL, P_CAMPAIGN, P_COLLECTIVE_VISIT, P_ESCALATE,
                                     P_EXACT, P_MALFORMED, P_MULTI, P_PEAK_MONTH, P_REPEAT,
                                     P_RESEND, P_REUSE_PERSON, P_SAME_MATTER, P_TWO_TOPICS, PHONE,
                                     REPEAT, RESEND, SAME, SOFT_NATURES, TOWNSHIP, VILLAGE, VISIT)


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
        self.channel_cum = cumulative(CHANNEL_WEIGHTS)

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
        topic = weighted(rng, world.topic_cum)
        cfg = world.topic_cfg[topic]
        issue = weighted(rng, cfg["issue_cum"])
        topic2 = issue2 = -1
        if cfg["partners"] and rng.random() < P_TWO_TOPICS:
            topic2 = cfg["partners"][weighted(rng, cfg["partner_cum"])]
            issue2 = weighted(rng, world.topic_cfg[topic2]["issue_cum"])
        home = cfg["home_levels"][weighted(rng, cfg["home_cum"])]
        kind = {"village": VILLAGE, "estate": ESTATE}.get(cfg["place"])
        if kind is None:
            kind = ESTATE if rng.random() < 0.35 else VILLAGE
        if kind == ESTATE:
            estate = below(rng, len(world.estates))
            township = world.estates[estate][1]
        else:
            township = below(rng, len(world.townships))
            estate = pick(rng, world.township_estates[township] or range(len(world.estates)))
        village = pick(rng, world.township_villages[township])
        if cfg["peak_days"] and rng.random() < P_PEAK_MONTH:
            start = pick(rng, cfg["peak_days"])
        else:
            start = weighted(rng, world.day_cum)
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
            people = randint(rng, 5, 15)
        elif u < P_CAMPAIGN + P_SAME_MATTER:
            people = randint(rng, 2, 4)
        else:
            people = 1
        spread = 21 if people >= 5 else 60
        persons = []
        for j in range(people):
            day = start if j == 0 else start + randint(rng, 1, spread - 1)
            person = -1 if rng.random() < cfg["anonymous"] else self._person(matter, cfg, persons)
            persons.append(person)
            self._plan_thread(matter, person, day, ORIGINAL if j == 0 else SAME, people)
            if len(self.plan) >= self.target:
                return

    def _person(self, matter, cfg, taken):
        """A petitioner for the matter: usually new and local, sometimes a long-term one."""
        rng, plan, world = self.rng, self.plan, self.world
        if len(plan.p_kind) and rng.random() < P_REUSE_PERSON:
            person = below(rng, len(plan.p_kind))
            if person not in taken:
                return person
        if rng.random() < cfg["local"]:
            kind = plan.m_place_kind[matter]
            township = plan.m_township[matter]
            place = plan.m_estate[matter] if kind == ESTATE else plan.m_village[matter]
        elif rng.random() < 0.9:
            kind = ESTATE if rng.random() < 0.3 else VILLAGE
            items = world.estates if kind == ESTATE else world.villages
            place = below(rng, len(items))
            township = items[place][1]
        else:
            kind, township = ELSEWHERE, -1
            place = below(rng, len(world.places["elsewhere"]))
        return plan.add_person(kind=kind, township=township, place=place)

    # -- letters ---------------------------------------------------------------------------
    def _plan_thread(self, matter, person, day, pattern, people):
        """One petitioner's letters on a matter raised by ``people`` petitioners: the first,
        then reworded repeats. A matter several people raise is a complaint (申诉, 举报控告,
        求决) in every letter: people asking a question or making a suggestion about the
        same place are not raising one matter."""
        rng = self.rng
        cfg = self.world.topic_cfg[self.plan.m_topic[matter]]
        nature = weighted(rng, cfg["complaint_nature_cum" if people > 1 else "nature_cum"])
        complaint = NATURES[nature] not in SOFT_NATURES
        joint = person >= 0 and complaint and rng.random() < cfg["joint"] * (3 if people >= 5 else 1)
        repeats = 0
        if person >= 0 and complaint and rng.random() < P_REPEAT:
            repeats = pick(rng, (1, 1, 1, 2, 2, 3))
        prev, escalation = -1, 0
        for _ in range(repeats + 1):
            if day >= N_DAYS or len(self.plan) >= self.target:
                return
            letter = self._add_base(matter, person, day, pattern, prev, nature, joint, escalation)
            self._add_copies(letter, escalation)
            prev, pattern = letter, REPEAT
            day += randint(rng, 14, 84)
            escalation += rng.random() < P_ESCALATE

    def _add_base(self, matter, person, day, pattern, prev, nature, joint, escalation):
        rng, plan = self.rng, self.plan
        channel = weighted(rng, self.channel_cum)
        if person < 0 and channel == VISIT:
            channel = LETTER                            # visitors are always registered
        level = self._level(plan.m_home[matter], channel, escalation)
        visitors = signatories = 0
        if channel == VISIT:
            if joint or rng.random() < P_COLLECTIVE_VISIT:
                visitors = 5 + int(rng.random() ** 2 * 45)
            else:
                visitors = 1 if rng.random() < 0.65 else randint(rng, 2, 4)
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
            for _ in range(pick(rng, (1, 1, 1, 2, 2, 3))):
                channel = pick(rng, (LETTER, LETTER, ONLINE, MAILBOX))
                level = self._level(plan.m_home[plan.matter[source]], channel, escalation + 1)
                body = self._body(level, channel, plan.matter[source])
                if body not in used:
                    used.add(body)
                    self._add_copy(source, MULTI, day + randint(rng, 0, 10), channel, body)
        elif u < P_MULTI + P_EXACT:
            channel, body = plan.channel[source], plan.body[source]
            if rng.random() < 0.5:
                channel = pick(rng, (LETTER, ONLINE))
                level = self._level(plan.m_home[plan.matter[source]], channel, escalation + 1)
                body = self._body(level, channel, plan.matter[source])
            self._add_copy(source, EXACT, day + randint(rng, 0, 7), channel, body)
        elif u < P_MULTI + P_EXACT + P_RESEND:
            self._add_copy(source, RESEND, day + randint(rng, 7, 60), plan.channel[source],
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
                                weighted(self.rng, cfg["nature_cum"]), False, 0)
        self.plan.malformed[letter] = kind

    # -- draws -----------------------------------------------------------------------------
    def _level(self, home, channel, escalation):
        """Addressee level: mostly the county, never below the matter's home level."""
        rng = self.rng
        weights = [w if (level >= home and (level > TOWNSHIP or home == TOWNSHIP)) else 0
                   for level, w in enumerate(LEVEL_WEIGHTS[channel])]
        level = weighted(rng, cumulative(weights))
        for _ in range(escalation):
            if level + 1 < len(weights) and weights[level + 1] and rng.random() < 0.5:
                level += 1
        return level

    def _body(self, level, channel, matter):
        plan, world = self.plan, self.world
        if level == TOWNSHIP:
            return pick(self.rng, world.township_bodies[plan.m_township[matter]])
        return pick(self.rng, world.candidates(level, channel, plan.m_topic[matter]))

    def _second(self, channel):
        """Time of day: office hours for registered items, any time for online messages."""
        rng = self.rng
        if channel in (ONLINE, MAILBOX):
            return int(rng.triangular(0, 86399, 72000))
        return randint(rng, 8 * 3600 + 1800, 17 * 3600 + 1800)


def plan_letters(world, n, seed):
    """Plan ``n`` letters (no text yet) from ``seed``; returns a `Plan`."""
    return _Planner(world, seed, n).run()
