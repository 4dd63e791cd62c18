"""Personal data in text: the patterns of identifiers and the masks that replace them.

Rule (README: Privacy): raw names and identifiers appear only in the register data
(``ingested.parquet``, the letter-as-received columns of ``normalized.parquet``, the quarantine's
raw row) and the review workbench; every other output shows text through these masks.

:func:`mask_identifiers` replaces, in this order:

- e-mail addresses (``zhang.san@163.com``);
- ID-card numbers: any 18-character shape (17 digits + digit or X, checksum or not: register
  typos are common), also written 6-8-4 with spaces or dashes, and 15-digit (old) numbers whose
  digits 7-12 read as a date; after 身份证(号码) also when other digits follow directly;
- bank card numbers: 16-19 digits, also in groups of 4 separated by spaces or dashes;
- mobile numbers in every written form: ``13812345678``, ``138 1234 5678``, ``139-8765-4321``,
  ``+86 137…``, ``86-137…``, ``0086137…``; after 电话/手机/联系 also when digits follow directly;
- landlines: ``0731-84567890``, ``(0731)84567890``, ``0731 84567890`` (area code 0 + 2-3 digits,
  then 7-8 digits, optional extension), and 7-8 digits after a cue (电话, 座机, 固话).

:class:`NameMasker` replaces a name right after a cue word (我叫, 本人, 信访人, 反映人, 联系人 …)
by its surname + 某 (我叫张三丰 → 我叫张某).
"""
import functools
import re
from pathlib import Path

import jieba

EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![A-Za-z])")
# The number patterns open with a look-ahead of the characters they can start with: ``re`` skips
# to those instead of trying the look-behind after it at every character.
# 18-character ID shape (also 6-8-4 with spaces or dashes), and 15-digit old numbers: region code
# (first digit 1-8), YYMMDD, 3 digits.
ID_NUMBER = re.compile(r"(?=\d)(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{6}[ -]\d{8}[ -]\d{3}[\dXx]"
                       r"|[1-8]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3})(?![0-9A-Za-z])")
# After an explicit cue the number is masked even when more digits follow it directly
# (身份证号3390…0467 2019年… written without a separator).
ID_AFTER_CUE = re.compile(r"(?<=身份证)((?:号码|号)?[:：]?\s*)(\d{17}[\dXx]|\d{15})")
BANK_CARD = re.compile(r"(?=\d)(?<![0-9A-Za-z])(?:\d{16,19}|\d{4}(?:[ -]\d{4}){3}(?:[ -]?\d{1,3})?)(?![0-9A-Za-z])")
_MOBILE_CORE = r"1[3-9]\d[- ]?\d{4}[- ]?\d{4}"
MOBILE = re.compile(rf"(?=[\d+(])(?<![\d+])(?:(?:\+|00)?86[- ]?|\(\+?86\)\s?)?{_MOBILE_CORE}(?!\d)")
MOBILE_AFTER_CUE = re.compile(r"(?<=电话|手机|联系)((?:号码|号|方式)?[:：]?\s*)(1[3-9]\d{9})")
LANDLINE = re.compile(r"(?=[0(（])(?<![\d(（])(?:0\d{2,3}[- ]?|[(（]0\d{2,3}[)）]\s?)[2-9]\d{6,7}(?:[-转]\d{1,5})?(?!\d)")
LANDLINE_AFTER_CUE = re.compile(r"(?<=电话|座机|固话)((?:号码|号)?[:：]?\s*)([2-9]\d{6,7})(?!\d)")

# Every number the patterns below mask holds 7 digits in a row, single spaces or dashes allowed
# between them: a text without such a run is left as it is.
NUMBER_LIKE = re.compile(r"\d(?:[- ]?\d){6}")

ID_MASK, PHONE_MASK, BANK_MASK, LANDLINE_MASK, EMAIL_MASK = "[身份证号]", "[手机号]", "[银行卡号]", "[电话]", "[邮箱]"


def mask_identifiers(text, *, id_mask=ID_MASK, phone_mask=PHONE_MASK, bank_mask=BANK_MASK,
                     landline_mask=LANDLINE_MASK, email_mask=EMAIL_MASK):
    """``text`` (a str) with e-mail addresses, ID-card, bank card, mobile and landline numbers
    replaced by the given masks (see the module docstring for the forms recognised)."""
    # each pattern is tried at every character of a text: only where its "@" or cue is
    if "@" in text:
        text = EMAIL.sub(email_mask, text)
    if "身份证" in text:
        text = ID_AFTER_CUE.sub(lambda m: m.group(1) + id_mask, text)
    if not NUMBER_LIKE.search(text):
        return text
    text = ID_NUMBER.sub(id_mask, text)
    text = BANK_CARD.sub(bank_mask, text)
    text = MOBILE_AFTER_CUE.sub(lambda m: m.group(1) + phone_mask, text)
    text = MOBILE.sub(phone_mask, text)
    text = LANDLINE.sub(landline_mask, text)
    return LANDLINE_AFTER_CUE.sub(lambda m: m.group(1) + landline_mask, text)


class NameMasker:
    """Find people's names written after a cue word (我叫张三丰, 本人李四, 信访人：王五), the
    names listed after one with 、 (投诉人：蒋诚先、陈歌) and a name opening a line or
    sentence before one of ``lead_words`` (张三到县政府来访, 张三敬上), and mask them as
    surname + 某 (我叫张某).

    A name is a surname (one of ``surnames``, or a compound one) and one or two given-name
    characters, none of them in ``not_given`` (的, 在, 今 ...), ending where the text stops
    being Chinese (punctuation, digits, a space, the end) or at one of ``follow_words``
    (男, 今年, 家住, 电话 ...). Words are not names: a candidate whose first two characters
    or whole form is one of ``common_words`` (曾经, 许可, 陈述) is left alone, and so is one
    whose surname is also a function word (向, 于, 曾: ``function_surnames``) and whose given
    name is a common word (本人向法院反映, 本人曾多次).

    Parameters
    ----------
    surnames : str
        One-character surnames (the configuration's ``dedupe.surnames``).
    cues : list of str
        Words a name follows (我叫, 本人, 信访人 ...).
    follow_words : list of str
        Words that may follow a name directly.
    not_given : str
        Characters that are never part of a given name.
    compound_surnames : list of str
        Two-character surnames (欧阳, 司马 ...).
    common_words : set of str
        Words of 2-3 characters that are not names (see :meth:`from_config`).
    function_surnames : str
        Surnames that are also function words.
    mask_char : str
        What the given name becomes.
    lead_words : list of str
        Words that make a name opening a line or sentence a name (张三到, 张三敬上).
    place_endings : str
        Characters a name never ends in, because a word ending in one is a place (高桥村).
    """

    def __init__(self, surnames, cues, follow_words=(), not_given="", compound_surnames=(), common_words=(),
                 function_surnames="", mask_char="某", lead_words=(), place_endings=""):
        self.surnames, self.not_given, self.mask_char = set(surnames), set(not_given), mask_char
        self.place_endings = set(place_endings)
        self.compound, self.common = frozenset(compound_surnames), frozenset(common_words)
        self.function_surnames = set(function_surnames)
        self.follow = tuple(sorted(follow_words, key=len, reverse=True))
        self.lead_words = tuple(lead_words)
        cue = "|".join(sorted(map(re.escape, cues), key=len, reverse=True))
        self._cue = re.compile(rf"(?:{cue})[:：]?[ \t]*") if cues else None

    @classmethod
    def from_config(cls, config):
        """The masker the ``normalize`` settings describe. Common words are jieba's dictionary
        words of 2-3 characters not tagged as names, or tagged as names but common (an IDF
        below ``name_common_idf``: 许可, 陈述); function surnames are the surnames jieba tags
        with one of ``name_function_tags``."""
        c, surnames = config.normalize, config.dedupe.surnames
        tags, idf = jieba_words()
        common = {word for word, tag in tags.items() if 2 <= len(word) <= 3
                  and (not tag.startswith("nr") or idf.get(word, c.name_common_idf) < c.name_common_idf)}
        function = "".join(s for s in surnames if tags.get(s) in c.name_function_tags)
        return cls(surnames, c.name_cues, c.name_follow_words, c.name_not_given_chars, c.compound_surnames,
                   common, function, c.mask_char, c.name_lead_words, c.name_place_endings)

    def _surname(self, text, start):
        return 2 if text[start:start + 2] in self.compound else 1 if text[start:start + 1] in self.surnames else 0

    def _name_at(self, text, start):
        """The end of the name starting at ``start``, or None."""
        surname = self._surname(text, start)
        if not surname or (surname == 1 and text[start:start + 2] in self.common):
            return None
        for given in (2, 1):
            end = start + surname + given
            name = text[start:end]
            if len(name) < surname + given or not all(is_cjk(ch) and ch not in self.not_given
                                                      for ch in name[surname:]):
                continue
            if (name in self.common or name[-1] in self.place_endings
                    or (name[0] in self.function_surnames and name[surname:] in self.common)):
                return None
            if end == len(text) or not is_cjk(text[end]) or text.startswith(self.follow, end):
                return end
        return None

    def spans(self, text):
        """(start, end) of every name after a cue in ``text``, and of every name opening a line
        or sentence that one of ``lead_words`` follows (张三到…, the signature 张三敬上)."""
        found = []
        for cue in self._cue.finditer(text) if self._cue else ():
            start = cue.end()
            while (end := self._name_at(text, start)) is not None:
                found.append((start, end))
                if not text.startswith("、", end):
                    break
                start = end + 1
        for opening in _OPENING.finditer(text) if self.lead_words else ():
            start = opening.end()
            end = self._name_at(text, start)
            if end is not None and text.startswith(self.lead_words, end) and (start, end) not in found:
                found.append((start, end))
        return sorted(found)

    def mask(self, text, replace=None, spans=None):
        """``text`` with the names after cues replaced by ``replace(name)`` (default: its
        surname + ``mask_char``); ``spans``: ``spans(text)``, when the caller has them."""
        replace = replace or self.masked
        for start, end in reversed(self.spans(text) if spans is None else spans):
            text = text[:start] + replace(text[start:end]) + text[end:]
        return text

    def masked(self, name):
        """张三丰 → 张某, 欧阳倩 → 欧阳某."""
        return name[:2 if name[:2] in self.compound else 1] + self.mask_char

    def mask_registered(self, text, name):
        """``text`` with a registered name (2-4 Chinese characters, not masked) replaced
        wherever it occurs by its masked form."""
        name = name.strip() if isinstance(name, str) else ""
        if not 2 <= len(name) <= 4 or not all(is_cjk(ch) for ch in name) or self.mask_char in name:
            return text
        return text.replace(name, self.masked(name))


@functools.cache
def jieba_words():
    """({word: part-of-speech tag}, {word: idf}) of jieba's dictionary and IDF table, for the
    words of 1-3 characters (what a surname or a name after a cue could be confused with)."""
    folder = Path(jieba.__file__).parent
    tags, idf = {}, {}
    for line in (folder / "dict.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3 and len(parts[0]) <= 3:
            tags[parts[0]] = parts[2]
    for line in (folder / "analyse" / "idf.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and 2 <= len(parts[0]) <= 3:
            idf[parts[0]] = float(parts[1])
    return tags, idf


_OPENING = re.compile(r"(?:^|(?<=[\n。！？!?;；]))[ \t]*")


def is_cjk(ch):
    """Whether the character ``ch`` is Chinese (the ranges of ``normalize.CJK``)."""
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"
