"""Where a letter comes from: its township (乡镇/街道), from the address or else from the text.

:func:`find_townships` takes the first match of ``report.township_pattern`` in the address.
For letters whose address names none (online letters have no address at all) it looks in
the clean text for a known township name: those the addresses gave, those the configured
``report.township_text_patterns`` find in any letter's text (长沙县星沙街道 → 星沙街道), and
the words of the segment dictionaries ending in ``report.township_suffixes`` (see
:func:`dictionary_townships`). It says for each letter where the name came from.
"""
import re

import pandas as pd

from pipeline import schema
from pipeline.errors import PetitionError

UNKNOWN_TOWNSHIP = "未识别"
FROM_ADDRESS, FROM_TEXT = "address", "text"
MIN_TEXT_NAME = 3          # a township found in a text has 2+ characters before 镇/乡/街道


def _with_group(pattern, key):
    regex = re.compile(pattern)
    if regex.groups < 1:
        raise PetitionError(f"report.{key} needs a group for the name: {pattern!r}")
    return regex


def dictionary_townships(paths, suffixes, false_endings=()):
    """Words of jieba user dictionaries (``word [freq [tag]]`` lines) ending in one of
    ``suffixes`` and in none of ``false_endings``; unreadable files are skipped."""
    words = set()
    for path in paths:
        try:
            lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
        except OSError:
            continue
        for line in lines:
            word = line.split()[0] if line.split() else ""
            if word.endswith(tuple(suffixes)) and not word.endswith(tuple(false_endings)):
                words.add(word)
    return words


def _text_names(texts, patterns, false_endings):
    names = set()
    for regex in patterns:
        for found in texts.str.findall(regex):
            names.update(f if isinstance(f, str) else f[0] for f in found)
    return {n for n in names if len(n) >= MIN_TEXT_NAME and not n.endswith(tuple(false_endings))}


def find_townships(letters, settings, known=()):
    """The township of each letter and where it came from.

    Parameters
    ----------
    letters : DataFrame
        With ``address`` and ``clean_text``.
    settings : ReportConfig
        ``township_pattern``, ``township_text_fallback``, ``township_text_patterns``,
        ``township_false_endings``.
    known : iterable of str
        More township names to look for in texts (e.g. :func:`dictionary_townships`).

    Returns
    -------
    (Series, Series)
        The names (``UNKNOWN_TOWNSHIP`` when none is found) and their sources
        (``FROM_ADDRESS``, ``FROM_TEXT`` or '').
    """
    regex = _with_group(settings.township_pattern, "township_pattern")
    addresses = letters[schema.ADDRESS].fillna("").astype(str)
    unique = pd.Series(addresses.unique(), dtype=object)
    extracted = unique.str.extract(regex, expand=True)[0] if len(unique) else pd.Series([], dtype=object)
    found = dict(zip(unique, extracted))
    result = addresses.map(found).astype(object)
    source = pd.Series("", index=letters.index, dtype=object)
    source[result.notna() & (result != "")] = FROM_ADDRESS
    missing = result.isna() | (result == "")
    if settings.township_text_fallback and missing.any():
        texts = letters[schema.CLEAN_TEXT].fillna("").astype(str)
        patterns = [_with_group(p, "township_text_patterns") for p in settings.township_text_patterns]
        names = ({t for t in found.values() if isinstance(t, str) and t}
                 | _text_names(texts, patterns, settings.township_false_endings) | set(known))
        if names:
            lookup = re.compile("(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + ")")
            result[missing] = texts[missing].str.extract(lookup, expand=False).astype(object)
            source[missing & result.notna() & (result != "")] = FROM_TEXT
    return result.fillna(UNKNOWN_TOWNSHIP).replace("", UNKNOWN_TOWNSHIP), source
