"""The template language of the phrase banks, and the banks compiled from ``phrases.yaml``.

A template is literal text with three kinds of marks:

- ``[a|b|c]`` picks one alternative (alternatives nest and may be empty: ``[很|]``);
- ``<bank>`` expands a random template of another bank (``<who>``, ``<want>``);
- ``{slot}`` stays literal and is filled by ``str.format_map`` with the letter's values
  (the names in `SLOTS`; the renderer provides them all).

`compile_template` turns a template into a node once; `expand` renders a node with a
``random.Random``. A bank is a tuple of nodes. ``phrases.yaml`` holds generic banks (some per
nature), per-topic banks (shared by the topic's issues, ``facts`` extended per issue), copy
edits, web boilerplate and letter structures; `generic_banks`, `topic_banks`,
`compile_bank` and `compile_structures` compile them and check slots and references.
"""
import re

from pipeline.synth.settings import NATURES

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

# A topic's settings in phrases.yaml; its other keys are phrase banks.
TOPIC_KEYS = ("name", "path", "weight", "natures", "home", "place", "local", "anonymous", "joint",
              "dept", "roles", "peak_months", "issues")


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
    """Parse ``text`` from ``i`` to its end, or (``nested``) to the next ``|`` or ``]``.

    Returns (node, index where parsing stopped).
    """
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


def compile_bank(templates, where):
    """Compile a YAML list of templates into a tuple of nodes; check their slots."""
    if not isinstance(templates, list) or not templates:
        raise ValueError(f"{where}: expected a non-empty list of templates")
    for text in templates:
        unknown = set(re.findall(r"\{([^{}]*)\}", str(text))) - SLOTS
        if unknown:
            raise ValueError(f"{where}: unknown slots {sorted(unknown)} in {text!r}")
    return tuple(compile_template(str(text)) for text in templates)


def generic_banks(raw):
    """The ``generic`` section compiled: name -> bank, or name -> {nature or default: bank}."""
    return {name: _generic_bank(value, name) for name, value in raw.items()}


def _generic_bank(value, name):
    if isinstance(value, dict):
        return {nature: compile_bank(bank, f"generic.{name}.{nature}")
                for nature, bank in value.items()}
    return compile_bank(value, f"generic.{name}")


def topic_banks(code, raw, generic, refs):
    """The banks of topic ``code`` (its ``phrases.yaml`` entry ``raw``) over ``generic``.

    Returns a list per issue of a list per nature (`NATURES` order) of {bank name: bank}.
    ``refs`` caches the bank names each bank refers to (id(bank) -> (bank, names)); pass
    the same dict for every topic, since generic banks are shared.
    """
    shared = {name: compile_bank(value, f"topics.{code}.{name}")
              for name, value in raw.items() if name not in TOPIC_KEYS}
    by_issue = []
    for issue_name, issue in raw["issues"].items():
        own = dict(shared)
        for name, value in issue.items():
            if name == "weight":
                continue
            bank = compile_bank(value, f"topics.{code}.issues.{issue_name}.{name}")
            own[name] = own.get(name, ()) + bank if name == "facts" else bank
        merged = [_merge(generic, own, nature) for nature in NATURES]
        _check_issue(f"topics.{code}.issues.{issue_name}", raw, merged, refs)
        by_issue.append(merged)
    return by_issue


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


def _check_issue(where, raw, banks_by_nature, refs):
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
            if id(bank) not in refs:
                refs[id(bank)] = (bank, set().union(*map(_refs, bank)))
            dangling = refs[id(bank)][1] - set(banks)
            if dangling:
                raise ValueError(f"{where}.{name}: unknown banks {sorted(dangling)}")


def compile_structures(raw):
    """{(family, nature family): [structure]}; a structure is a list of entries,
    an entry is (section, probability) or a list of entries to shuffle."""
    def entry(item):
        if isinstance(item, list):
            return [entry(sub) for sub in item]
        name, _, prob = str(item).partition(" ")
        return (name, float(prob) if prob else 1.0)
    return {(family, kind): [[entry(item) for item in structure] for structure in structures]
            for family, by_kind in raw.items() for kind, structures in by_kind.items()}
