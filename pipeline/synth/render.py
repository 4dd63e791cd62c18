"""The renderer: turns a planned letter into its register row, its text and its truth row.

Every letter is a pure function of (seed, plan). A letter's text is drawn from a generator
seeded with the plan index of the letter whose text it uses (``text_src``): copies
reproduce their source's text without keeping it, and letters can be rendered in any
order. Register fields and copy edits use the letter's own seed. The facts of a matter
(names, amounts, case numbers) and of a petitioner (name, ID number, phone, address) have
their own seeded streams, so every letter about them says the same.

A text is composed from a structure (an ordered list of sections, some optional, some
shuffled) filled from the phrase banks of the matter's topic, issue and nature, grown to a
drawn target length; copies then get tiny edits (`Renderer.edit`) and every text may get the
quirks of real material (`Renderer.quirks`): full-width digits, 、 as a decimal point,
half-width punctuation, a line broken mid-word, web boilerplate, mis-decoded fragments,
HTML whitespace, and sometimes traditional script (OpenCC s2t).
"""
import datetime as dt
import hashlib
import math
import random
import re

from pipeline.schema import LEVELS
from pipeline.synth.draws import (MATTER_STREAM, OWN_STREAM, PERSON_STREAM, TEXT_STREAM, below,
                                  cn_date, date_of, duration, id_checksum, log_uniform, money,
                                  pick, randint, stream_seed, weighted)
from pipeline.synth.phrases import expand
from pipeline.synth.settings import (BODY_CAP, BODY_MIN, CHANNELS, CITY, COUNTY, ELSEWHERE,
                                     ESTATE, FILLERS, MAILBOX, MALFORMED, MULTI, MULTI_SECTIONS,
                                     N_DAYS, NATURES, ONLINE, P_IDS_IN_TEXT, P_TRADITIONAL,
                                     PATTERNS, PHONE, QUIRK_RATES, REPEAT, RESEND,
                                     SECONDARY_SECTIONS, SOFT_NATURES, TOWNSHIP, VISIT)
from pipeline.synth.world import township_gov

DECIMAL_RE = re.compile(r"(\d)\.(\d)")
FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
HALFWIDTH_PUNCT = str.maketrans({"，": ",", "：": ":", "；": ";", "（": "(", "）": ")", "！": "!"})
PUNCT_SWAPS = (("，", ","), ("。", "."), ("！", "!"), ("：", ":"), ("？", "?"))
CJK = re.compile(r"[\u4e00-\u9fff]{2}")


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


class Renderer:
    """Turns plan rows into register rows and truth rows; pure function of (seed, plan)."""

    def __init__(self, world, plan, seed):
        self.world, self.plan, self.seed = world, plan, seed
        self.places = world.places

    # -- matter and person facts -------------------------------------------------------------
    def matter_facts(self, matter):
        """Names and numbers of a matter, the same in every letter about it."""
        rng = random.Random(stream_seed(self.seed, MATTER_STREAM, matter))
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
            "group": below(rng, len(places["group_numerals"])),
            "road": pick(rng, places["roads"]), "road2": pick(rng, places["roads"]),
            "company": pick(rng, places["companies"]),
            "developer": pick(rng, places["developers"]),
            "factory": pick(rng, places["factories"]), "soe": pick(rng, places["soes"]),
            "property": pick(rng, places["properties"]), "shop": pick(rng, places["shops"]),
            "school": pick(rng, places["schools"]), "hospital": pick(rng, hospitals),
            "project": pick(rng, places["projects"]),
            "official": self._random_name(rng), "party": self._random_name(rng),
            "role": pick(rng, cfg["roles"]),
            "case_year": date_of(plan.m_origin[matter]).year,
            "case_n": randint(rng, 100, 4999),
            "case_kind": pick(rng, ("民初", "民初", "执", "民终")),
            "doc_year": randint(rng, 2012, 2022), "doc_n": randint(rng, 3, 68),
            "amount": log_uniform(rng, 50_000, 8_000_000, 100),
            "amount_small": log_uniform(rng, 300, 30_000, 10),
            "price_mu": log_uniform(rng, 18_000, 96_000, 100),
            "area": randint(rng, 3, 600), "area_m2": randint(rng, 45, 380),
            "households": randint(rng, 3, 150), "workers": randint(rng, 5, 120),
            "pct": round(1.5 + rng.random() * 40, 1),
            "dept": cfg["dept"]["city" if home >= CITY else "county"],
        }

    def _random_name(self, rng):
        male = rng.random() < 0.75
        given = self.places["given_male" if male else "given_female"]
        return pick(rng, self.places["surnames"]), pick(rng, given)

    def person_facts(self, person):
        """A petitioner: name, gender, birth date, ID number, mobile, address parts."""
        rng = random.Random(stream_seed(self.seed, PERSON_STREAM, person))
        places, plan = self.places, self.plan
        male = rng.random() < 0.62
        surname = pick(rng, places["surnames"])
        given = pick(rng, places["given_male" if male else "given_female"])
        birth = dt.date(1940 + int(rng.triangular(0, 62, 22)), randint(rng, 1, 12),
                        randint(rng, 1, 28))
        kind = plan.p_kind[person]
        region = pick(rng, places["id_regions"]["elsewhere" if kind == ELSEWHERE else "county"])
        sequence = f"{below(rng, 100):02d}{below(rng, 5) * 2 + (1 if male else 0)}"
        body17 = f"{region}{birth:%Y%m%d}{sequence}"
        return {
            "surname": surname, "given": given, "male": male, "birth": birth,
            "idno": body17 + id_checksum(body17),
            "phone": pick(rng, places["mobile_prefixes"]) + f"{below(rng, 10 ** 8):08d}",
            "kind": kind, "township": plan.p_township[person], "place": plan.p_place[person],
            "group": below(rng, len(places["group_numerals"])),
            "house": randint(rng, 1, 88), "room": (randint(rng, 1, 18), randint(rng, 1, 4),
                                                  randint(rng, 1, 26), randint(rng, 1, 4)),
            "my_area": round(0.5 + rng.random() * 7.5, 1),
            "my_amount": log_uniform(rng, 3_000, 200_000, 100),
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
        return pick(rng, self.places["name_masks"]).format(s=surname)

    # -- context ---------------------------------------------------------------------------
    def _context(self, src, rng, facts, person, banks):
        """Every slot value for rendering letter ``src``'s text."""
        plan, world, places = self.plan, self.world, self.places
        day, origin = plan.day[src], plan.m_origin[plan.matter[src]]
        group = places["group_numerals"][facts["group"]]
        township = facts["township"]
        if facts["place_kind"] == ESTATE:
            place = pick(rng, (f"{township}{facts['estate']}", f"{facts['estate']}小区"))
        else:
            place = pick(rng, (f"{township}{facts['village']}", facts["village"],
                                f"{places['county']}{township}{facts['village']}"))
        home_level = plan.m_home[plan.matter[src]]
        gov = {TOWNSHIP: township_gov(township), COUNTY: f"{places['county']}人民政府"}.get(
            home_level, f"{places['city']}人民政府")
        court = (f"{places['city']}中级人民法院" if home_level >= CITY
                 else f"{places['county']}人民法院")
        station = township[:-2] if township.endswith("街道") else township[:-1]
        ctx = {
            "province": places["province"], "city": places["city"], "county": places["county"],
            "township": township, "village": facts["village"], "estate": facts["estate"],
            "group": pick(rng, (f"{group}组", f"第{group}村民小组", f"{facts['group'] + 1}组")),
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
            "amount": money(facts["amount"], rng),
            "amount_small": money(facts["amount_small"], rng),
            "price_mu": str(facts["price_mu"]), "area": str(facts["area"]),
            "area_m2": str(facts["area_m2"]), "households": str(facts["households"]),
            "workers": str(facts["workers"]), "pct": f"{facts['pct']:g}",
            "origin": cn_date(origin, rng) if rng.random() < 0.7 else f"{date_of(origin).year}年",
            "origin_year": str(date_of(origin).year),
            "addressee": world.bodies[plan.body[src]][0],
            "date": cn_date(day),
            "duration": duration(day - origin, rng),
            "visitors": str(plan.visitors[src]), "signatories": str(plan.signatories[src]),
        }
        prev = plan.prev[src]
        ctx["prev_date"] = cn_date(plan.day[prev], rng) if prev >= 0 else ""
        ctx["prev_addressee"] = world.bodies[plan.body[prev]][0] if prev >= 0 else ""
        collective = plan.signatories[src] or plan.visitors[src] >= 5
        if person is None:
            ctx.update(name="", gender="", age=str(randint(rng, 35, 75)), home=place, address="",
                       phone="", idno="",
                       my_area=f"{round(0.5 + rng.random() * 7.5, 1):g}",
                       my_amount=money(log_uniform(rng, 3_000, 200_000, 100), rng))
            ctx["我"] = "我们" if collective or rng.random() < 0.5 else "我"
            ctx["spouse"] = pick(rng, ("丈夫", "妻子", "老伴"))
        else:
            home, address = self._addresses(person)
            ctx.update(name=self._masked(person["surname"], person["given"], rng, 0.6),
                       gender="男" if person["male"] else "女",
                       age=str(date_of(day).year - person["birth"].year), home=home,
                       address=address, phone=person["phone"], idno=person["idno"],
                       my_area=f"{person['my_area']:g}",
                       my_amount=money(person["my_amount"], rng))
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
        rng = random.Random(stream_seed(self.seed, TEXT_STREAM, src))
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
        structure = pick(rng, world.structures[(family, kind)])
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
        township = township_gov(world.townships[plan.m_township[matter]])
        days = sorted(origin + 1 + below(rng, day - origin - 1) for _ in range(8))
        return [{"when": cn_date(d, rng),
                 "where": township if rng.random() < 0.25 else pick(rng, places)}
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
            sep = pick(rng, ("\n", "\n", "\n", "", "", "\n\n"))
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
        ctx = {"addressee": world.bodies[plan.body[letter]][0], "date": cn_date(plan.day[letter]),
               "prev_date": cn_date(plan.day[plan.prev[letter]])}
        say = lambda bank: expand(pick(rng, edits[bank]), rng, {}).format_map(ctx)
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
            old, new = pick(rng, PUNCT_SWAPS)
            main = main.replace(old, new, randint(rng, 1, 3))
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
            line = expand(pick(rng, self.world.boilerplate), rng, {}).format_map(
                {"date": cn_date(int(rng.random() * N_DAYS))})
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
            return pick(rng, self.places["anonymous_names"]), "", "", ""
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
        d = date_of(day)
        if bad:
            return pick(rng, (f"{d.year}年13月{d.day}日", f"{d.year}年{d.month}月45日",
                               f"{d.year}-02-30", f"{d.year}/0/{d.day}", f"{d.year}.14.03"))
        online = channel in (ONLINE, MAILBOX)
        form = weighted(rng, (0.7, 0.9, 1.0) if online else (0.2, 0.65, 1.0))
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
        own = random.Random(stream_seed(self.seed, OWN_STREAM, letter))
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
        topics = [world.topic_cfg[plan.m_topic[matter]]["path"]]
        if plan.m_topic2[matter] >= 0:
            topics.append(world.topic_cfg[plan.m_topic2[matter]]["path"])
        truth = (letter_id, "|".join(topics), NATURES[plan.nature[letter]], f"M{matter:07d}",
                 f"P{person:07d}" if person >= 0 else "", int(person < 0),
                 plan.signatories[letter], plan.visitors[letter],
                 int(flags["traditional"] and malformed != "empty_text"),
                 int(flags["ids_in_text"] and malformed != "empty_text"),
                 LEVELS[home], int(level > max(home, COUNTY)), PATTERNS[plan.pattern[letter]],
                 malformed)
        digest = int.from_bytes(hashlib.blake2b(body.encode(), digest_size=8).digest(), "little")
        return row, truth, digest
