"""Normalize: clean letter text the way Chinese petition text needs, and pseudonymise people.

``clean_text`` is ``clean(title) + "\\n" + clean(content)`` (the first line is always the
title, possibly empty), where ``clean`` applies, in order:

1. HTML entities and tags removed; NFKC (full-width letters, digits and punctuation to
   half-width);
2. traditional script to simplified (OpenCC ``t2s``; ``was_traditional`` records it, and
   ``original_text`` keeps the letter as received); pinyin annotations removed (總結(jié) → 总结);
3. web boilerplate removed (patterns in ``corpora/config.yaml``);
4. whitespace: removed between two Chinese characters (lines broken mid-word, HTML
   indentation), otherwise collapsed to one space;
5. ``、`` between digits read as a decimal point (``7、4%`` → ``7.4%``);
6. identifiers masked (``pipeline.privacy``): ID-card, bank card, mobile and landline numbers,
   e-mail addresses; names after a cue word and the letter's registered name → surname + 某;
7. masked names unified: 某, x, xx, ××, *, ～ all become one mask, so 郭×× and 郭某 compare equal.

``masked_names`` keeps what dedupe needs of the names step 6 masked, never the names: a keyed
hash, with the surname, of each name dedupe counted as a specific person before names were
masked (``NameEvidence``), "|"-joined (``张:3f9a…``), so letters naming one person still share
that evidence (a specific name and a TF-IDF term in dedupe) and links show it as 张某.

``petitioner_key`` is a keyed hash (HMAC-SHA256) of the best identifier available: the ID
number, else the phone, else name + address, else the name alone. The key comes from
``$PETITION_KEY`` or a secret file created on first use outside the repository
(``$PETITION_KEY_FILE``, default ``~/.config/petition/key``), so later stages can link a
person's letters without anyone reading who they are.
"""
import collections
import hashlib
import hmac
import html
import os
import re
import secrets
import sys
import unicodedata
from pathlib import Path

import opencc
import pandas as pd
from tqdm import tqdm

from pipeline import parallel, privacy, schema, segment
from pipeline.engine import on_configured_engine
from pipeline.errors import PetitionError
from pipeline.rundir import stage

CJK = r"\u3400-\u9fff\uf900-\ufaff"
_TAG = re.compile(r"<[^<>]{1,200}>")
# A pattern opening with a look-behind is tried at every character of a text; opened with a
# look-ahead of the characters it can match first, ``re`` skips to them (two to three times faster)
_DECIMAL = re.compile(r"(?=、)(?<=\d)、(?=\d)")
# Pinyin written after a character (總結(jié), 對（duì）, 的(de), 过(guo4), 總結(zǒng jié)): parenthesised syllables
# of Latin letters right after a Chinese character; with a tone mark or digit always, without one
# (neutral tone) only in a text holding at least two toned ones.
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜńňǹḿ"
_SYLLABLE = rf"[a-zü{_TONED}]{{1,6}}[1-5]?"
_PINYIN = re.compile(rf"(?<=[{CJK}])\(({_SYLLABLE}(?: {_SYLLABLE}){{0,3}})\)")  # one per character, or a word's
_PINYIN_TONE = re.compile(rf"[{_TONED}1-5]")
# A surname (or place word) followed by 1-3 mask characters: 郭××, 张xx, 李*, 王～, 赵某某.
_MASK_AFTER_CJK = re.compile(rf"(?=[xX×*~某])(?<=[{CJK}])[xX×*~某]{{1,3}}(?![A-Za-z])")
# A free-standing run of 2-3 mask characters: xxx, ××, 某某.
_MASK_ALONE = re.compile(r"(?=[xX×*~某])(?<![A-Za-z0-9])[xX×*~某]{2,3}(?![A-Za-z0-9])")
# NFKC maps each of these (full-width ASCII, the ideographic space) to one character: replaced
# first, most letters are left already normalized, which unicodedata checks far faster than it
# normalizes a text
_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")
_HALF_WIDTH = {chr(code): unicodedata.normalize("NFKC", chr(code)) for code in (*range(0xFF01, 0xFF5F), 0x3000)}
# the blocks jieba cuts one by one (jieba.re_han_default): a word never crosses their edge
_JIEBA_BLOCK = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&._%\-]+")


def nfkc(text):
    """``unicodedata.normalize("NFKC", text)``, about four times faster on Chinese letters."""
    text = _FULL_WIDTH.sub(lambda match: _HALF_WIDTH[match.group()], text)
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


class NameEvidence:
    """What dedupe counts as a specific person where normalize masks a name: the words it
    counted before names were masked (``NameExtractor``'s full names in
    ``pipeline.dedup.matter``), i.e. the segmenter's words over the name of 2-3 characters, a
    surname first, no word of jieba's dictionary or IDF table nor an organisation term of the
    petition dictionary: 崔超 of 本人崔超, 马平到 of 马平到县里, 王月 of 我叫王月娥 (cut
    王月|娥); nothing of 李光明 (cut 李|光明) or 王伟 (a dictionary word).

    Parameters
    ----------
    surnames : str
        One-character surnames (the configuration's ``dedupe.surnames``).
    user_dicts : list of path
        The segmenter's user dictionaries (``segment.Segmenter``).
    hmm : bool
        The segmenter's HMM setting.
    common : set of str
        Words that are no one's name.
    """

    def __init__(self, surnames, user_dicts=(), hmm=True, common=frozenset()):
        self.surnames, self.common = frozenset(surnames), frozenset(common)
        self.user_dicts, self.hmm = list(user_dicts), hmm
        self._cutter = None

    @classmethod
    def from_config(cls, config):
        petition = config.paths.dict_dir / "petition_dict.txt"
        tags, idf = privacy.jieba_words()
        terms = {word for word, _, tag in segment.read_user_dict(petition) if tag == "nt"}
        return cls(config.dedupe.surnames, [petition, *config.segment.extra_dicts], config.segment.hmm,
                   set(tags) | set(idf) | terms)

    def load(self):
        """Read the dictionaries now (before forking workers); returns self."""
        if self._cutter is None:
            self._cutter = segment.JiebaCutter(self.user_dicts, self.hmm)
        return self

    def __getstate__(self):
        # the loaded dictionaries are not pickled: a Spark worker loads its own on first use
        return self.__dict__ | {"_cutter": None}

    def words(self, text, start, end):
        """The counted words (see the class docstring) over the name ``text[start:end]``."""
        return [word for _, word in self._cut_over(text, start, end) if self.counts(word)]

    def written(self, text, word):
        """True when ``word`` is one of the segmenter's words of ``text`` (still written in it)."""
        return any((match.start(), word) in self._cut_over(text, match.start(), match.end())
                   for match in re.finditer(re.escape(word), text))

    def counts(self, word):
        return 2 <= len(word) <= 3 and word[0] in self.surnames and word not in self.common

    def _cut_over(self, text, start, end):
        """(position, word) of the segmenter's words of ``text`` over ``text[start:end]``."""
        for block in _JIEBA_BLOCK.finditer(text):
            if block.start() <= start and end <= block.end():
                position, found = block.start(), []
                for word in self.load()._cutter.lcut(block.group()):
                    if position < end and position + len(word) > start:
                        found.append((position, word))
                    position += len(word)
                return found
        return []


class TextCleaner:
    """Clean one text at a time (see the module docstring for the rules).

    Parameters
    ----------
    mask_char : str
        What every masked-name form becomes.
    id_mask, phone_mask : str
        What ID-card and mobile numbers in the text become.
    boilerplate : list of str
        Regular expressions of web boilerplate to remove.
    """

    def __init__(self, mask_char="某", id_mask=privacy.ID_MASK, phone_mask=privacy.PHONE_MASK,
                 boilerplate=(), names=None, evidence=None, **masks):
        self.mask_char, self.id_mask, self.phone_mask = mask_char, id_mask, phone_mask
        self.masks = masks
        self.boilerplate = [re.compile(pattern) for pattern in boilerplate]
        self.names, self.evidence = names, evidence
        self._t2s = opencc.OpenCC("t2s")

    @classmethod
    def from_config(cls, config):
        c = config.normalize
        return cls(mask_char=c.mask_char, id_mask=c.id_mask, phone_mask=c.phone_mask, boilerplate=c.boilerplate,
                   names=privacy.NameMasker.from_config(config), evidence=NameEvidence.from_config(config),
                   bank_mask=c.bank_mask,
                   landline_mask=c.landline_mask, email_mask=c.email_mask)

    def __getstate__(self):
        # OpenCC's converter cannot be pickled: a Spark worker makes its own
        return {key: value for key, value in self.__dict__.items() if key != "_t2s"}

    def __setstate__(self, state):
        self.__dict__.update(state, _t2s=opencc.OpenCC("t2s"))

    def to_simplified(self, text):
        return self._t2s.convert(text)

    def mask_identifiers(self, text):
        """Replace ID-card, bank card, mobile and landline numbers and e-mail addresses
        (:func:`pipeline.privacy.mask_identifiers`)."""
        return privacy.mask_identifiers(text, id_mask=self.id_mask, phone_mask=self.phone_mask, **self.masks)

    def mask_names(self, text, registered=()):
        """Replace the names after cue words (我叫张三丰 → 我叫张某) and the ``registered``
        names (the letter's petitioner, cleaned) wherever they occur."""
        return self._mask_names(text, registered)[0]

    def _mask_names(self, text, registered):
        """(``mask_names(text, registered)``, the spans of the names after cues in ``text``;
        None when a registered name was masked first: those spans are of another text)."""
        if self.names is None:
            return text, None
        masked = text
        for name in registered:
            masked = self.names.mask_registered(masked, name)
        spans = self.names.spans(masked)
        return self.names.mask(masked, spans=spans), (spans if masked == text else None)

    @staticmethod
    def remove_pinyin(text):
        """Remove pinyin annotations: 總結(jié)是對(duì)过(guo)去 → 總結是對过去."""
        if "(" not in text:
            return text
        toned = sum(1 for m in _PINYIN.finditer(text) if _PINYIN_TONE.search(m.group(1)))
        if not toned:
            return text
        return _PINYIN.sub(lambda m: "" if toned >= 2 or _PINYIN_TONE.search(m.group(1)) else m.group(0), text)

    def counted_names(self, text, cleaned, registered=(), spans=None):
        """The words over the names masked in ``text`` (before name masking) that dedupe
        counts (``NameEvidence``), sorted; a word still written in ``cleaned`` is left to the
        segmenter. ``spans``: ``names.spans(text)``, when the caller has them."""
        if self.names is None or self.evidence is None:
            return []
        spans = set(self.names.spans(text) if spans is None else spans)
        for name in registered:
            spans.update((m.start(), m.end()) for m in re.finditer(re.escape(name), text))
        return sorted({word for start, end in spans for word in self.evidence.words(text, start, end)
                       if word not in cleaned or not self.evidence.written(cleaned, word)})

    def unify_masks(self, text):
        text = _MASK_AFTER_CJK.sub(self.mask_char, text)
        return _MASK_ALONE.sub(self.mask_char, text)

    def clean(self, text, registered=()):
        """Return the cleaned form of ``text`` (a str); ``registered``: the names the letter's
        petitioner is registered under, masked wherever they occur."""
        return self.unify_masks(self.mask_names(self._unmasked(text), registered))

    def clean_with_names(self, text, registered=()):
        """(cleaned ``text``, the masked names dedupe counts: :meth:`counted_names`)."""
        text = self._unmasked(text)
        masked, spans = self._mask_names(text, registered)  # names after cues found once, mostly
        cleaned = self.unify_masks(masked)
        return cleaned, self.counted_names(text, cleaned, registered, spans)

    def _unmasked(self, text):
        """Steps 1-5 and the identifier masks of step 6: ``text`` before names are masked."""
        text = _TAG.sub(" ", html.unescape(text))
        text = self.remove_pinyin(self.to_simplified(nfkc(text)))
        for pattern in self.boilerplate:
            text = pattern.sub(" ", text)
        return self.mask_identifiers(_DECIMAL.sub(".", _join_spaces(text)))

    def reclean(self, text):
        """``clean(text)`` for a text normalize already cleaned with this cleaner's settings (a
        run's ``clean_text``): only what such a text can still change (tags, the line break
        between title and body, masks), many times faster than cleaning it again."""
        return self.unify_masks(_join_spaces(_TAG.sub(" ", text)))


def _join_spaces(text):
    """Spaces between Chinese characters removed, other runs of spaces made one, none at the
    ends (``str.split`` splits where the regular expression ``\\s+`` matches, several times faster)."""
    words = text.split()
    if len(words) < 2:
        return words[0] if words else ""
    joined = [words[0]]
    for before, word in zip(words, words[1:]):
        if not (privacy.is_cjk(before[-1]) and privacy.is_cjk(word[0])):
            joined.append(" ")
        joined.append(word)
    return "".join(joined)


def load_key(create=True):
    """Return the secret pseudonymisation key (bytes).

    Read from ``$PETITION_KEY``, else from the file ``$PETITION_KEY_FILE`` (default
    ``~/.config/petition/key``), which is created with a random key, readable by its owner
    only, when missing and ``create`` is true.
    """
    if os.environ.get("PETITION_KEY"):
        return os.environ["PETITION_KEY"].encode("utf-8")
    path = Path(os.environ.get("PETITION_KEY_FILE")
                or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "petition" / "key")
    if not path.exists():
        if not create:
            raise PetitionError(f"{path}: no pseudonymisation key; set PETITION_KEY or run normalize once")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        print(f"normalize: created pseudonymisation key {path} (keep it: keys link people across runs)",
              file=sys.stderr)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise PetitionError(f"{path}: pseudonymisation key file is empty")
    return key.encode("utf-8")


class PetitionerKeys:
    """Keyed pseudonyms of petitioners.

    Parameters
    ----------
    key : bytes
        The secret (see ``load_key``).
    cleaner : TextCleaner
        Used to unify name masks and script, so 郭×× and 郭某 get one key.
    anonymous_names : iterable of str
        Name values that mean no name was given.
    """

    def __init__(self, key, cleaner, anonymous_names=()):
        self.key, self.cleaner = key, cleaner
        self.anonymous = {self._canonical(name) for name in anonymous_names}

    def _canonical(self, value):
        return self.cleaner.unify_masks(self.cleaner.to_simplified(nfkc(value)).replace(" ", ""))

    def registered_names(self, name):
        """The forms of a registered ``name`` masked in the letter's text: as registered and as
        cleaned (simplified script, no spaces); none for an anonymous or masked name."""
        canonical = self._canonical(name)
        if not canonical or canonical in self.anonymous or self.cleaner.mask_char in canonical:
            return ()
        return tuple({canonical, name.strip()})

    def _hash(self, text):
        return hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def name_key(self, name):
        """The keyed hash of a person's ``name`` found in a letter's text, after its surname
        (张三丰 → 张:3f9a…): what ``masked_names`` holds, never the name."""
        surname = self.cleaner.names.masked(name)[:-len(self.cleaner.names.mask_char)]
        return f"{surname}:{self._hash('person:' + name)}"

    def key_for(self, name="", id_number="", phone="", address=""):
        """Return (pseudonym, basis); ('', 'none') when the letter names nobody."""
        id_number = re.sub(r"\s", "", id_number).upper()
        if len(id_number) in (15, 18) and id_number[:15].isdigit():
            return self._hash("id:" + id_number), "id"
        digits = re.sub(r"\D", "", phone)
        if len(digits) >= 7:
            return self._hash("phone:" + digits[-11:]), "phone"
        name = self._canonical(name)
        if not name or name in self.anonymous or set(name) <= {self.cleaner.mask_char}:
            return "", "none"
        if address.strip():
            return self._hash(f"name_address:{name}|{self._canonical(address)}"), "name_address"
        return self._hash("name:" + name), "name"


class LetterNormalizer:
    """Callable over a list of letter tuples (title, content, name, id number, phone,
    address) returning (clean_text, was_traditional, petitioner_key, key_basis,
    masked_names) tuples; the task ``parallel.map_chunks`` runs in each worker."""

    def __init__(self, cleaner, keys):
        self.cleaner, self.keys = cleaner, keys

    def __call__(self, rows):
        clean = self.cleaner.clean_with_names
        out = []
        for title, content, name, id_number, phone, address in rows:
            raw = title + content
            registered = self.keys.registered_names(name)
            (title, in_title), (content, in_content) = clean(title, registered), clean(content, registered)
            masked = "|".join(sorted(map(self.keys.name_key, set(in_title) | set(in_content))))
            out.append((title + "\n" + content, self.cleaner.to_simplified(raw) != raw,
                        *self.keys.key_for(name, id_number, phone, address), masked))
        return out


def normalize(letters, cleaner, keys, processes=1, chunk_size=2000, progress=None):
    """Add ``original_text``, ``clean_text``, ``was_traditional``, ``petitioner_key``,
    ``petitioner_key_basis`` and ``masked_names`` to ``letters`` (the ingest output), in
    ``processes`` workers.

    Returns
    -------
    normalized : DataFrame
        Letters whose cleaned text is not empty.
    quarantine : list of dict
        Letters left with no text after cleaning (e.g. nothing but boilerplate).
    """
    added = (schema.CLEAN_TEXT, schema.WAS_TRADITIONAL, schema.PETITIONER_KEY, schema.PETITIONER_KEY_BASIS,
             schema.MASKED_NAMES)
    rows = list(letters[[schema.TITLE, schema.CONTENT, *schema.PETITIONER_COLUMNS]].itertuples(index=False, name=None))
    if cleaner.evidence is not None and cleaner.names is not None and rows:
        cleaner.evidence.load()  # before the workers fork: they inherit the dictionaries
    results = parallel.map_chunks(LetterNormalizer(cleaner, keys), rows, processes, chunk_size, progress)
    out = letters.copy()
    # text columns typed as strings: a batch whose letters are all quarantined (an empty frame)
    # must still give the Parquet writer string columns, not nulls
    out[schema.ORIGINAL_TEXT] = (letters[schema.TITLE] + "\n" + letters[schema.CONTENT]).astype("str")
    for position, column in enumerate(added):
        out[column] = pd.Series([result[position] for result in results], index=letters.index,
                                dtype=bool if column == schema.WAS_TRADITIONAL else "str")
    empty = out[schema.CLEAN_TEXT].str.strip() == ""
    quarantine = [{schema.SOURCE_FILE: row[schema.SOURCE_FILE], schema.SOURCE_ROW: row[schema.SOURCE_ROW],
                   schema.COLUMN: schema.TEXT_COLUMNS_NAME, schema.REASON: "no text left after normalization",
                   schema.RAW: row[schema.ORIGINAL_TEXT]} for _, row in out[empty].iterrows()]
    return out[~empty].reset_index(drop=True), quarantine


@on_configured_engine
def run_stage(run, config, *, processes=None):
    """Normalize the ingested letters of ``run`` (a ``RunDir``) batch by batch into
    ``normalized.parquet`` in ``processes`` workers (default: ``normalize.processes``).
    Returns the ``StageResult``."""
    processes = processes or config.normalize.processes
    rows, batches = run.read_batches("ingest", config.normalize.batch_rows,
                                     needed=(schema.TITLE, schema.CONTENT, *schema.PETITIONER_COLUMNS,
                                             schema.SOURCE_FILE, schema.SOURCE_ROW))
    cleaner = TextCleaner.from_config(config)
    keys = PetitionerKeys(load_key(), cleaner, config.normalize.anonymous_names)
    quarantine, written, traditional, bases = [], 0, 0, collections.Counter()

    def normalized_batches():  # batch by batch: a million letters' texts are never all in memory
        nonlocal written, traditional
        for letters in batches:
            normalized, dropped = normalize(letters, cleaner, keys, processes,
                                            config.normalize.chunk_size, progress=bar.update)
            quarantine.extend(dropped)
            written += len(normalized)
            traditional += int(normalized[schema.WAS_TRADITIONAL].sum())
            bases.update(normalized[schema.PETITIONER_KEY_BASIS].value_counts().to_dict())
            yield normalized
    with stage(run, "normalize") as result, tqdm(total=rows, desc="normalize", unit="letter", disable=None) as bar:
        run.write_batches("normalize", normalized_batches())
        run.set_quarantine("normalize", quarantine)
        result.rows_in, result.rows_out, result.quarantined = rows, written, len(quarantine)
        result.notes = {"traditional": traditional,
                        "petitioner keys by basis": dict(bases.most_common())}
    return result
