"""Helpers for the analyst notebooks in ``notebooks/``: find the run, load its letters,
show text without identifying anyone, highlight the names letters share.

Privacy: notebooks show people only by their ``petitioner_key`` pseudonym. Letter text is
shown through :func:`redact`, which replaces the petitioners' names (as registered, and as
they appear in the text), addresses, ID-card and mobile numbers and signatory lists.
Masked names (张某) are kept: they identify no one and often tie letters together.
"""
import functools
import html
import os
import re
from pathlib import Path

import pandas as pd

from pipeline import privacy, schema
from pipeline.classifier.taxonomy import Taxonomy
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.errors import PetitionError
from pipeline.letters import load_letters, prepare
from pipeline.letters import topic_names as read_topic_names
from pipeline.reporting.fonts import matplotlib_cjk_font
from pipeline.reporting.tables import CHANNEL_ZH
from pipeline.rundir import RunDir
from pipeline.safe_text import markdown_code, markdown_text  # noqa: F401 (the notebooks' Markdown)

RUN_ENV = "PETITION_RUN"
PERSON_LABEL = "〔信访人{}〕"
ADDRESS_LABEL = "〔住址〕"
SIGNATORIES_LABEL = "〔联名人名单已隐去〕"
# "联名人：张三、李四、王五" / "签名：..." up to the end of the line or sentence.
_SIGNATORY_LIST = re.compile(r"((?:联名人|签名人|签名|署名人|联名群众)[（(]?[^：:\n]{0,8}[)）]?[：:])"
                             r"[^\n。]*")


def find_run(default_home=None):
    """The run directory: ``$PETITION_RUN``, else the newest run under ``runs/`` that has
    ``deduped.parquet``."""
    if os.environ.get(RUN_ENV):
        path = Path(os.environ[RUN_ENV])
        if not (path / "deduped.parquet").exists():
            raise PetitionError(f"{RUN_ENV}={path}: no deduped.parquet there")
        return path
    home = Path(default_home or PROJECT_ROOT / "runs")
    runs = sorted(home.glob("*/deduped.parquet"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise PetitionError(f"no run found: set {RUN_ENV}=RUN_DIR or run `make nightly` first")
    return runs[-1].parent


def load(run, history=None, with_history=True):
    """Letters of ``run`` (and its history, as ``petition report`` reads them), prepared:
    dates parsed, flags boolean, ``_topics`` a list of topic codes. The raw identifier
    columns are still there, for :func:`redact_frame`: display letters through
    :func:`public_columns` and their text through :func:`redact_frame`."""
    run = RunDir(run)
    if with_history:
        letters, _ = load_letters(run, history)
    else:
        letters = prepare(run.read("dedupe"))
    return letters


def topic_names(config=None):
    """{topic label: the name shown} of the configured taxonomy (labels are paths: 城乡建设,
    国土资源/征地拆迁)."""
    config = config or load_config()
    return read_topic_names(config.report.taxonomy)


def topic_labels(labels, config=None):
    """The configured taxonomy's label for each of ``labels`` (a label, a code such as
    land_requisition or a unique second-level name); a label the taxonomy lacks stays as it is."""
    taxonomy = Taxonomy.load((config or load_config()).report.taxonomy)
    return [taxonomy.code_for(label) or label for label in labels]


def use_cjk_font():
    """Point matplotlib at the installed CJK font (``reporting.fonts.matplotlib_cjk_font``), if
    there is one; True when there is."""
    import matplotlib

    font = matplotlib_cjk_font()
    if font:
        matplotlib.rcParams["font.sans-serif"] = [font, *matplotlib.rcParams["font.sans-serif"]]
        matplotlib.rcParams["font.family"] = "sans-serif"
        matplotlib.rcParams["axes.unicode_minus"] = False
    return font is not None


def pseudonym(key):
    """How a person is shown: their ``petitioner_key`` (a keyed hash), or 匿名."""
    return key if key else "匿名"


@functools.cache
def _name_patterns():
    """(the masker of names after a cue word, a name opening a line or sentence), built once
    from the configuration (normalize's name settings, dedupe.surnames)."""
    config = load_config()
    surnames = "|".join(config.normalize.compound_surnames) + f"|[{re.escape(config.dedupe.surnames)}]"
    given = rf"[^\W\d_{re.escape(config.normalize.name_not_given_chars)}]"
    name = rf"(?:{surnames}){given}{{1,2}}"
    # a name opening a line or sentence: "张三等12人到…", "张三来访反映：", the signature "张三\n日期"
    leading = re.compile(rf"((?:^|(?<=[\n。！？]))\s*)({name})(?=等\s*[\d一二三四五六七八九十]|来访|来电|到|\s*敬上|\s*\n|\s*$)",
                         re.MULTILINE)
    return privacy.NameMasker.from_config(config), leading


# An address after 住/家住/住址：…, up to the next punctuation, when it reaches a house, room or
# village group (a number, 号, 室, 栋, 组) and names a place (县, 镇, 村, 小区, 路 …).
_ADDRESS_AT_CUE = re.compile(r"((?:家住|住在|现住|居住在|住址|地址|住)[:：]?\s*)([^\s,，。;；:：!！?？]{4,60})")
_ADDRESS_DETAIL = re.compile(r"[0-9号室栋组]")
_ADDRESS_PLACE = re.compile(r"省|市|县|区|镇|乡|街道|村|社区|小区|花园|苑|路|街")


def _address_at_cue(match):
    place = match.group(2)
    if _ADDRESS_DETAIL.search(place) and _ADDRESS_PLACE.search(place):
        return match.group(1) + ADDRESS_LABEL
    return match.group(0)


def redact(text, names=(), addresses=(), label=PERSON_LABEL.format("")):
    """``text`` with identifiers replaced.

    Parameters
    ----------
    names : iterable of str or of (name, replacement)
        Raw petitioner names; masked ones (张某) and single characters are left alone.
    addresses : iterable of str
        Raw addresses; each is replaced whole, and so is every tail of it that starts after a
        省/市/县/区 (江北市青山县柳溪镇白石村3组: also 青山县柳溪镇白石村3组, 柳溪镇白石村3组).
    label : str
        What a name found only by its cue (本人张三, 反映人：李四) becomes.

    Besides the given names and addresses, ID-card, mobile and landline numbers, signatory
    lists (联名人：…), an address after 住/家住/住址 that reaches a house, room or village
    group, and a surname-led name right after a cue word (我叫, 本人, 反映人, 来访人, 村民 …)
    are replaced. Masked names (张某) and village-level places (柳溪镇白石村) stay.
    """
    text = "" if text is None or (not isinstance(text, str) and pd.isna(text)) else str(text)
    text = privacy.mask_identifiers(text)
    text = _SIGNATORY_LIST.sub(lambda m: m.group(1) + SIGNATORIES_LABEL, text)
    name_at_cue, name_leading = _name_patterns()
    parts = set()
    for address in addresses:
        address = address.strip() if isinstance(address, str) else ""
        if len(address) >= 4:
            parts.add(address)
            for tail in re.split(r"(?<=[省市县区])", address)[1:]:
                rest = address[address.index(tail):]
                if len(rest) >= 4:
                    parts.add(rest)
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(part, ADDRESS_LABEL)
    text = _ADDRESS_AT_CUE.sub(_address_at_cue, text)
    pairs = [(n, label) if isinstance(n, str) else tuple(n) for n in names]
    pairs = {(n.strip(), r) for n, r in pairs if isinstance(n, str) and len(n.strip()) >= 2 and "某" not in n}
    for name, replacement in sorted(pairs, key=lambda p: len(p[0]), reverse=True):
        text = text.replace(name, replacement)
    text = name_at_cue.mask(text, replace=lambda name: label)
    return name_leading.sub(lambda m: m.group(1) + label, text)


def _anonymous_names():
    """Names that stand for no one (匿名, 群众 ...): the configuration's normalize.anonymous_names."""
    return frozenset(load_config().normalize.anonymous_names)


def _raw_name(name, anonymous=frozenset()):
    """A name that identifies someone: not masked (张某, 郭××), not 匿名 or 群众."""
    return (isinstance(name, str) and len(name.strip()) >= 2 and name.strip() not in anonymous
            and not re.search(r"[某xX×*～~]|匿名|群众|羣衆", name))


def redact_frame(letters, column=schema.CLEAN_TEXT, reference=None):
    """Redacted text of each letter.

    A letter's own petitioner (every raw name and address registered under its
    ``petitioner_key``) becomes ``〔信访人<pseudonym>〕`` and ``〔住址〕``; any other
    registered petitioner's name of 3 or more characters found in the text becomes
    ``〔信访人〕``; then :func:`redact` applies its rules (numbers, signatory lists, names
    after cue words). Names and addresses are gathered from ``reference`` (e.g. the whole
    history; default: ``letters`` themselves).
    """
    reference = letters if reference is None else reference

    def column_of(frame, name):
        return frame.get(name, pd.Series("", index=frame.index)).fillna("").astype(str).str.strip()
    names, addresses = column_of(letters, schema.PETITIONER_NAME), column_of(letters, schema.ADDRESS)
    keys = letters[schema.PETITIONER_KEY].fillna("").astype(str)
    anonymous = _anonymous_names()
    by_key_names, by_key_addresses = {}, {}
    ref_names = column_of(reference, schema.PETITIONER_NAME)
    for name, address, key in zip(ref_names, column_of(reference, schema.ADDRESS),
                                  reference[schema.PETITIONER_KEY].fillna("").astype(str)):
        if key:
            if _raw_name(name, anonymous):
                by_key_names.setdefault(key, set()).add(name)
            if address:
                by_key_addresses.setdefault(key, set()).add(address)
    # Other petitioners' names are looked for only from 3 characters: a 2-character name (江华)
    # is too often part of a place (滨江华府); 2-character names are still caught at their own
    # letters and after a cue word (本人, 反映人：…).
    everyone = {n for n in set(ref_names) if _raw_name(n, anonymous) and len(n) >= 3}
    lengths = sorted({len(n) for n in everyone})
    out = []
    for text, name, address, key in zip(letters[column], names, addresses, keys):
        text = "" if not isinstance(text, str) else text
        own = by_key_names.get(key, set()) | ({name} if _raw_name(name, anonymous) else set())
        # other petitioners' names in the text: look up every substring of a name's length
        found = {text[i:i + n] for n in lengths for i in range(len(text) - n + 1)} & everyone
        pairs = [(n, PERSON_LABEL.format(key)) for n in own] + [(n, PERSON_LABEL.format("")) for n in found - own]
        out.append(redact(text, pairs, by_key_addresses.get(key, set()) | {address}))
    return pd.Series(out, index=letters.index, dtype=object)


def public_columns(letters):
    """``letters`` without the raw identifier columns (names, ID and phone numbers,
    addresses, original text): what a notebook may display."""
    drop = [*schema.PETITIONER_COLUMNS, schema.ORIGINAL_TEXT, schema.TITLE, schema.CONTENT, schema.EXTRA]
    return letters.drop(columns=[c for c in drop if c in letters.columns])


def case_links(links, case):
    """The rows of ``links`` (links.csv as strings) that touch a letter of ``case``: both
    letters, relation, score and the shared names, these redacted like the letters' texts
    (the case's registered petitioner names and addresses hidden)."""
    anonymous = _anonymous_names()
    names = {n for n in case[schema.PETITIONER_NAME] if _raw_name(n, anonymous)}
    addresses = set(case[schema.ADDRESS].dropna())
    ids = set(case[schema.LETTER_ID])
    inside = links.loc[links[schema.LETTER_A].isin(ids) | links[schema.LETTER_B].isin(ids),
                       [schema.LETTER_A, schema.LETTER_B, schema.RELATION, schema.LINK_SCORE, schema.SHARED_NAMES]]
    return inside.assign(**{schema.SHARED_NAMES: inside[schema.SHARED_NAMES].map(
        lambda shared: redact(shared, names, addresses))})


@functools.cache
def _extractor():
    """dedupe's NameExtractor, configured as dedupe uses it (built once: it loads jieba's tables)."""
    from pipeline.dedup.matter import NameExtractor
    return NameExtractor.from_config(load_config())


def names_in(text):
    """Specific names (places, organisations, numbers, masked people) in ``text``, as dedupe finds them."""
    places, others = _extractor().extract(text)
    return set(places) | set(others)


def name_counts(texts):
    """{name: number of ``texts`` it occurs in} for the specific names of ``texts``."""
    counts = {}
    for text in texts:
        for name in names_in(text):
            counts[name] = counts.get(name, 0) + 1
    return counts


def shared_names(texts, min_letters=2):
    """Names found in at least ``min_letters`` of ``texts``, longest first."""
    counts = name_counts(texts)
    return sorted((n for n, c in counts.items() if c >= min_letters), key=lambda n: (-len(n), n))


def highlight(text, names):
    """HTML of ``text`` with every occurrence of ``names`` in <mark>."""
    if not names:
        return html.escape(text).replace("\n", "<br>")
    pattern = re.compile("|".join(map(re.escape, sorted(names, key=len, reverse=True))))
    out, last = [], 0
    for match in pattern.finditer(text):
        out += [html.escape(text[last:match.start()]), f"<mark>{html.escape(match.group(0))}</mark>"]
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out).replace("\n", "<br>")


def side_by_side(letters, texts, names=None, max_letters=4):
    """An HTML table: one column per letter (header: id, date, channel, addressee,
    pseudonym, relation), its redacted text below with ``names`` marked (default: the
    names shared by at least two of the letters shown)."""
    letters, texts = letters.head(max_letters), list(texts)[:max_letters]
    if names is None:
        names = shared_names(texts)
    heads, cells = [], []
    for (_, row), text in zip(letters.iterrows(), texts):
        date = "" if pd.isna(row[schema.RECEIVED_AT]) else f"{row[schema.RECEIVED_AT]:%Y-%m-%d}"
        heads.append(
            f"<th style='vertical-align:top;text-align:left'>{html.escape(row[schema.LETTER_ID])}<br>{date} · "
            f"{html.escape(CHANNEL_ZH.get(row[schema.CHANNEL], row[schema.CHANNEL]))}<br>"
            f"{html.escape(row[schema.ADDRESSEE])}<br>信访人：{html.escape(pseudonym(row[schema.PETITIONER_KEY]))}"
            f"<br>{html.escape(row[schema.RELATION] or '首件')}</th>")
        cells.append(f"<td style='vertical-align:top;width:{100 // max(len(letters), 1)}%'>{highlight(text, names)}</td>")
    return ("<table style='border-collapse:collapse;font-size:0.9em' border='1'>"
            f"<tr>{''.join(heads)}</tr><tr>{''.join(cells)}</tr></table>")


def run_notebook(path, out, run=None, timeout=600):
    """Execute a notebook (a jupytext ``.py`` or an ``.ipynb``) top to bottom and write the
    executed ``.ipynb`` to ``out``. Needs the [dev] extras (jupytext, nbclient, ipykernel)."""
    import jupytext
    import nbclient

    if run is not None:
        os.environ[RUN_ENV] = str(run)
    notebook = jupytext.read(path)
    nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(PROJECT_ROOT)}}).execute()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, out, fmt="ipynb")
    return Path(out)


def main(argv=None):
    """``python -m pipeline.explore NOTEBOOK [--run RUN_DIR] --out FILE.ipynb``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.explore",
                                     description="Execute an analyst notebook on a run; write the executed .ipynb.")
    parser.add_argument("notebook", help="notebooks/NAME.py or .ipynb")
    parser.add_argument("--run", help=f"run directory (default: ${RUN_ENV}, else the newest run under runs/)")
    parser.add_argument("--out", required=True, help="executed notebook to write (.ipynb)")
    args = parser.parse_args(argv)
    print(run_notebook(args.notebook, args.out, args.run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
