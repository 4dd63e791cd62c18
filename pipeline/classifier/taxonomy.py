"""Topic taxonomy: the codes a model may assign, their names and the body each is routed to.

The default is ``corpora/taxonomy.yaml`` (domain.md's topics); an office replaces it with
``petition train --taxonomy FILE``. A training file's labels may be taxonomy codes or Chinese
names (both map to the code), or, without ``--taxonomy``, anything at all, used as they come.
"""
import dataclasses
from pathlib import Path

import yaml

from pipeline.errors import PetitionError


@dataclasses.dataclass(frozen=True)
class Topic:
    code: str
    zh: str
    en: str
    responsible_body: str


class Taxonomy:
    """An ordered set of topics.

    Parameters
    ----------
    topics : list of Topic
        Codes and Chinese names must be unique.
    """

    def __init__(self, topics):
        codes, names = [topic.code for topic in topics], [topic.zh for topic in topics]
        if len(set(codes)) < len(codes) or len(set(names)) < len(names):
            raise PetitionError("taxonomy: topic codes and Chinese names must be unique")
        self.topics = {topic.code: topic for topic in topics}
        self._by_name = {topic.zh: topic.code for topic in topics} | {code: code for code in self.topics}

    @classmethod
    def load(cls, path):
        """Read a taxonomy YAML (``topics:`` list of code, zh, en, responsible_body)."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            topics = [Topic(str(t["code"]), str(t["zh"]), str(t.get("en", "")), str(t["responsible_body"]))
                      for t in raw["topics"]]
        except FileNotFoundError:
            raise PetitionError(f"{path}: taxonomy file not found") from None
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise PetitionError(f"{path}: not a taxonomy (a `topics:` list of entries with code, zh and "
                                f"responsible_body): {exc!r}") from exc
        return cls(topics)

    def code_for(self, label):
        """The code of ``label`` (a code or a Chinese name), or None when it is not a topic."""
        return self._by_name.get(label)

    def describe(self, labels):
        """{label: {code, zh, en, responsible_body}} for labels that are codes or Chinese names;
        labels the taxonomy lacks get their own name and no responsible body."""
        return {label: (dataclasses.asdict(self.topics[self.code_for(label)]) if self.code_for(label)
                        else {"code": label, "zh": label, "en": "", "responsible_body": ""})
                for label in labels}
