"""How a text file's bytes become lines, and which delimiter its records use.

Offices export CSV in UTF-8 (with or without BOM), GB18030/GBK, Big5 (Traditional Chinese
Windows, code page 950) and UTF-16 (Excel's "Unicode text": UTF-16 LE with a BOM, tab-separated).

- UTF-16 is recognised by its BOM (or, without one, by NUL in every other byte of the first
  4 KB) and decoded whole; a file that is not valid UTF-16 is refused.
- Otherwise each line is decoded as UTF-8 when it can be, so a file stitched from a UTF-8 and a
  legacy export still reads. The lines that are not UTF-8 are one legacy encoding: Big5 when
  they decode as Big5 and look like it (below), else GB18030. A line that decodes as neither is
  marked undecodable (the CSV reader quarantines its row).

Big5 against GB18030: GB18030 decodes almost any byte pair, so a Big5 file reads as garbage
without an error (我家林權證 → и產狶舦靡). The second byte of a Big5 character lies in 0x40-0x7E
for about 40% of characters; in simplified GB2312 text it never does (GBK uses that range only
for rare and traditional characters, whose first bytes 0x81-0xA0 Big5 does not have).
"""
import codecs
import functools
import re

BIG5_CODECS = ("cp950", "big5hkscs")  # Windows Big5 first, then the Hong Kong extension
BIG5_LOW_TRAIL_SHARE = 0.15   # share of double-byte pairs whose second byte is 0x40-0x7E
BIG5_LINE_SHARE = 0.9         # share of the legacy lines that must decode as Big5
LEGACY_NAMES = {"gb18030": "GB18030", "big5": "Big5"}  # as messages and notes name them
DELIMITERS = (",", ";", "\t", "|")  # candidates, in order of preference on a tie
_DOUBLE_BYTE = re.compile(rb"[\x81-\xfe][\x30-\xfe]")
# Control characters removed from text (they break spreadsheets): C0 but TAB, LF and CR, DEL, C1.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class LineStream:
    """A text file's lines, decoded one at a time: memory holds a line, not the file.

    Iterating yields ``(line, encoding)``: the line with its ``\\n`` ending (the last line
    keeps none if the file has none; a CR-only file is split on CR, its lines ending in
    ``\\n``), and None for a line read as UTF-8 or UTF-16, else 'gb18030' | 'big5' |
    'undecodable' (an undecodable line holds replacement characters). The legacy encoding of
    the lines that are not UTF-8 is decided on all of them at once, by a pass over the bytes
    made when the first such line is met (a UTF-8 file is read once). A UTF-16 file, or one
    without a line feed, is decoded whole.

    Raises UnicodeDecodeError, on iterating, only for a UTF-16 file that is not valid UTF-16
    (the caller refuses the file).

    Attributes
    ----------
    encoding : str
        'utf-8', 'utf-16', or the legacy encoding of the non-UTF-8 lines (found when asked).
    legacy_lines : dict
        {encoding: number of lines read in it}, filled as lines are read.
    """

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as handle:
            head = handle.read(4096)
        self._utf16 = utf16_codec(head)
        self.legacy_lines = {}

    @functools.cached_property
    def encoding(self):
        return "utf-16" if self._utf16 else self._legacy_encoding()

    def _raw_lines(self):
        """The file's lines as bytes (UTF-8 BOM removed), each with its ending."""
        with open(self.path, "rb") as handle:
            first = handle.readline()
            if not first.endswith(b"\n") and b"\r" in first:  # no line feed anywhere: a CR-only file
                rest = first.removeprefix(codecs.BOM_UTF8).split(b"\r")
                yield from (part + b"\n" for part in rest[:-1])
                if rest[-1]:
                    yield rest[-1]
                return
            yield first.removeprefix(codecs.BOM_UTF8)
            yield from handle

    def _legacy_encoding(self):
        """'big5' when the lines that are not UTF-8 look like Big5 (``_looks_big5``), else
        'gb18030' ('utf-8' when every line is UTF-8)."""
        lines = pairs = low_trail = big5 = 0
        for raw in self._raw_lines():
            try:
                raw.decode("utf-8")
                continue
            except UnicodeDecodeError:
                pass
            found = _DOUBLE_BYTE.findall(raw)
            lines, pairs = lines + 1, pairs + len(found)
            low_trail += sum(0x40 <= pair[1] <= 0x7E for pair in found)
            big5 += _decode_first(raw, BIG5_CODECS) is not None
        if not lines:
            return "utf-8"
        looks_big5 = pairs and low_trail / pairs >= BIG5_LOW_TRAIL_SHARE and big5 / lines >= BIG5_LINE_SHARE
        return "big5" if looks_big5 else "gb18030"

    def __iter__(self):
        if self._utf16:
            with open(self.path, "rb") as handle:
                text = handle.read().decode(self._utf16).removeprefix("\ufeff")
            yield from ((line, None) for line in split_lines(text))
            return
        for raw in self._raw_lines():
            try:
                yield raw.decode("utf-8"), None
                continue
            except UnicodeDecodeError:
                pass
            text = _decode_first(raw, BIG5_CODECS if self.encoding == "big5" else ("gb18030",))
            encoding = self.encoding if text is not None else "undecodable"
            self.legacy_lines[encoding] = self.legacy_lines.get(encoding, 0) + 1
            yield (text if text is not None else raw.decode("utf-8", errors="replace")), encoding

    def notes(self):
        """Lines for the stage's notes: how many lines were read in a legacy encoding (after
        iterating)."""
        if self._utf16:
            return ["read as UTF-16"]
        return [f"lines read as {name}: {self.legacy_lines[key]}" for key, name in LEGACY_NAMES.items()
                if key in self.legacy_lines]


def utf16_codec(head):
    """The codec of UTF-16 bytes ('utf-16' with a BOM, 'utf-16-le'/'utf-16-be' without), else None."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    even, odd = head[0::2], head[1::2]
    if len(head) < 8:
        return None
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def looks_binary(head):
    """True for bytes that are no text file: NUL in more than 5% of them, and not UTF-16. A
    stray NUL inside a text export does not make it binary (control characters are removed later)."""
    return utf16_codec(head) is None and head.count(0) > 0.05 * len(head)


def split_lines(text):
    """Split on '\\n' only (str.splitlines also splits on \\x1c, \\u2028 and others that occur
    inside letter text); '\\r\\n' endings stay whole for the csv module. A file with CR but no
    LF (old Mac exports) is split on CR."""
    separator = "\r" if "\n" not in text and "\r" in text else "\n"
    parts = text.split(separator)
    lines = [part + "\n" for part in parts[:-1]]
    return lines + [parts[-1]] if parts[-1] else lines


def _decode_first(raw, codec_names):
    for name in codec_names:
        try:
            return raw.decode(name)
        except UnicodeDecodeError:
            continue
    return None


def sniff_delimiter(header_line):
    """The delimiter of a CSV from its header line: the one of ``,`` ``;`` tab ``|`` that occurs
    most often outside quotes (``,`` on a tie or when none occurs: a one-column file)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=counts.get)
    return best if counts[best] else ","
