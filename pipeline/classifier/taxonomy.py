"""Topic taxonomy: the labels a model may assign, in two levels, their names and routing.

The default is ``corpora/taxonomy.yaml``: the national petition content classification (15
first-level classes and their second-level classes, built by ``scripts/national_taxonomy.py``
from a board's ``taxonomy_3level.xlsx``) with the petition office's topics placed as second-level
classes. An office replaces it with ``petition train --taxonomy FILE``.

A topic's **label** is its Chinese path: ``城乡建设`` for a first-level class,
``城乡建设/住房保障与房地产`` for a second-level one (``LEVEL_SEP`` between the levels). Labels are
what models learn and write in ``topic``; a training file or a decision may also name a topic by
its code (``urban_rural_development``, an office topic's ``land_requisition``) or, for a
second-level class whose name occurs once in the taxonomy, by that name alone (``征地拆迁``).
A training file's labels without ``--taxonomy`` are used as they come (``A/B`` still reads as
two levels).

The file: ``topics:``, a list of first-level entries (code, zh, en, responsible_body, keywords,
optional ``children``: second-level entries with zh and optional code, en, responsible_body,
keywords; a child without a responsible body is routed as its parent).
"""
import dataclasses
from collections import Counter
from pathlib import Path

import yaml

from pipeline.errors import PetitionError

LEVEL_SEP = "/"


def level_label(label, level):
    """``label`` cut to ``level`` (1: the first-level class; 2: the label itself)."""
    return label.split(LEVEL_SEP, 1)[0] if level == 1 else label


def level_sets(label_sets, level):
    """Each label set cut to ``level``, repeats dropped, order kept (list of lists of str)."""
    return [list(dict.fromkeys(level_label(label, level) for label in labels)) for labels in label_sets]


@dataclasses.dataclass(frozen=True)
class Topic:
    code: str
    zh: str
    en: str
    responsible_body: str
    label: str = ""
    keywords: tuple = ()

    @property
    def level(self):
        return self.label.count(LEVEL_SEP) + 1


class Taxonomy:
    """An ordered set of topics in one or two levels.

    Parameters
    ----------
    topics : list of Topic
        First-level topics each followed by its second-level ones; labels and codes must be
        unique, and a second-level label must lie under a first-level topic of the list.
    """

    def __init__(self, topics):
        labels = [topic.label for topic in topics]
        codes = [topic.code for topic in topics if topic.code]
        if len(set(labels)) < len(labels) or len(set(codes)) < len(codes):
            raise PetitionError("taxonomy: topic labels (paths) and codes must be unique")
        if set(codes) & (set(labels) - set(codes)):
            raise PetitionError("taxonomy: a topic code equals another topic's label")
        orphans = [label for label in labels if LEVEL_SEP in label and level_label(label, 1) not in labels]
        if orphans:
            raise PetitionError(f"taxonomy: second-level topics without their first level: {', '.join(orphans)}")
        self.topics = {topic.label: topic for topic in topics}
        names = Counter(topic.zh for topic in topics if topic.level == 2)
        self._by_name = ({topic.zh: topic.label for topic in topics if topic.level == 2 and names[topic.zh] == 1}
                         | {topic.code: topic.label for topic in topics if topic.code}
                         | {label: label for label in labels})

    @classmethod
    def load(cls, path):
        """Read a taxonomy YAML (``topics:``: first-level entries, each with optional ``children``)."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            topics = []
            for entry in raw["topics"]:
                parent = _topic(entry, str(entry["zh"]), None)
                topics.append(parent)
                topics += [_topic(child, parent.label + LEVEL_SEP + str(child["zh"]), parent.responsible_body)
                           for child in entry.get("children") or ()]
        except FileNotFoundError:
            raise PetitionError(f"{path}: taxonomy file not found") from None
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise PetitionError(f"{path}: not a taxonomy (a `topics:` list of entries with code, zh and "
                                f"responsible_body, each with optional `children`): {exc!r}") from exc
        return cls(topics)

    def code_for(self, label):
        """The label of the topic ``label`` names (a label, a code or a unique second-level
        name), or None when it names none."""
        return self._by_name.get(str(label).strip())

    def level1(self):
        """The first-level labels, in the taxonomy's order."""
        return [label for label, topic in self.topics.items() if topic.level == 1]

    def describe(self, labels):
        """{label: {code, zh, en, responsible_body, label}} for ``labels`` (anything
        ``code_for`` knows); a label the taxonomy lacks gets its own name and no responsible body."""
        described = {}
        for label in labels:
            topic = self.topics.get(self.code_for(label))
            described[label] = ({key: value for key, value in dataclasses.asdict(topic).items() if key != "keywords"}
                                if topic else {"code": label, "zh": label, "en": "", "responsible_body": "",
                                               "label": label})
        return described


def _topic(entry, label, parent_body):
    """A Topic from a YAML entry: a first-level entry (``parent_body`` None) needs its code and
    responsible body; a second-level one inherits its parent's body."""
    first = parent_body is None
    return Topic(code=str(entry["code"] if first else entry.get("code") or ""), zh=str(entry["zh"]),
                 en=str(entry.get("en") or ""), label=label,
                 responsible_body=str(entry["responsible_body"] if first
                                      else entry.get("responsible_body") or parent_body),
                 keywords=tuple(map(str, entry.get("keywords") or ())))
