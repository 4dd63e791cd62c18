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
import re

BIG5_CODECS = ("cp950", "big5hkscs")  # Windows Big5 first, then the Hong Kong extension
BIG5_LOW_TRAIL_SHARE = 0.15   # share of double-byte pairs whose second byte is 0x40-0x7E
BIG5_LINE_SHARE = 0.9         # share of the legacy lines that must decode as Big5
DELIMITERS = (",", ";", "\t", "|")  # candidates, in order of preference on a tie
_DOUBLE_BYTE = re.compile(rb"[\x81-\xfe][\x30-\xfe]")
# Control characters removed from text (they break spreadsheets): C0 but TAB, LF and CR, DEL, C1.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class DecodedText:
    """A text file as lines.

    Attributes
    ----------
    lines : list of str
        Lines with their ``\\n`` endings (a CR-only file is split on CR).
    line_encodings : dict
        {1-based line number: 'gb18030' | 'big5' | 'undecodable'} for lines not read as UTF-8
        (undecodable lines hold replacement characters).
    encoding : str
        'utf-8', 'utf-16', or the legacy encoding of the non-UTF-8 lines.
    """

    def __init__(self, lines, line_encodings=None, encoding="utf-8"):
        self.lines, self.line_encodings, self.encoding = lines, line_encodings or {}, encoding

    def notes(self):
        """Lines for the stage's notes: how many lines were read in a legacy encoding."""
        if self.encoding == "utf-16":
            return ["read as UTF-16"]
        counts = {}
        for encoding in self.line_encodings.values():
            counts[encoding] = counts.get(encoding, 0) + 1
        names = {"gb18030": "GB18030", "big5": "Big5"}
        return [f"lines read as {names[key]}: {counts[key]}" for key in names if key in counts]


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


def decode(data):
    """Decode a text file's bytes into a ``DecodedText``.

    Raises UnicodeDecodeError only for a UTF-16 file that is not valid UTF-16 (the caller
    refuses the file); every other byte sequence gives lines.
    """
    codec = utf16_codec(data[:4096])
    if codec:
        return DecodedText(split_lines(data.decode(codec).removeprefix("\ufeff")), encoding="utf-16")
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return DecodedText(split_lines(data.decode("utf-8")))
    except UnicodeDecodeError:
        pass
    separator = b"\r" if b"\n" not in data and b"\r" in data else b"\n"
    raw_lines = data.split(separator)
    last_ending = raw_lines[-1] == b""  # the last line has no ending unless the file ends with one
    if last_ending:
        raw_lines.pop()
    lines, legacy = [], {}
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8") + "\n")
        except UnicodeDecodeError:
            lines.append(None)
            legacy[number] = raw
    encoding = "big5" if _looks_big5(list(legacy.values())) else "gb18030"
    codecs_tried = BIG5_CODECS if encoding == "big5" else ("gb18030",)
    line_encodings = {}
    for number, raw in legacy.items():
        text = _decode_first(raw, codecs_tried)
        line_encodings[number] = encoding if text is not None else "undecodable"
        lines[number - 1] = (text if text is not None else raw.decode("utf-8", errors="replace")) + "\n"
    if lines and not last_ending:
        lines[-1] = lines[-1][:-1]
    return DecodedText([line for line in lines if line], line_encodings, encoding)


def _decode_first(raw, codec_names):
    for name in codec_names:
        try:
            return raw.decode(name)
        except UnicodeDecodeError:
            continue
    return None


def _looks_big5(raw_lines):
    """True when the non-UTF-8 lines are Big5: nearly all decode as Big5, and the share of
    second bytes in 0x40-0x7E says Big5 rather than GB2312."""
    if not raw_lines:
        return False
    pairs = _DOUBLE_BYTE.findall(b"\n".join(raw_lines))
    if not pairs:
        return False
    low_trail = sum(0x40 <= pair[1] <= 0x7E for pair in pairs) / len(pairs)
    decodable = sum(_decode_first(raw, BIG5_CODECS) is not None for raw in raw_lines) / len(raw_lines)
    return low_trail >= BIG5_LOW_TRAIL_SHARE and decodable >= BIG5_LINE_SHARE


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
