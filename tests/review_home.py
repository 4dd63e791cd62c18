"""A nightly home for the review workbench's tests: part of the bundled sample, a few real board
messages (the default model is unsure of them: the review queue has letters), and letters whose
addressee and title carry markup."""
import pandas as pd

from pipeline import nightly
from tests.conftest import SHARED_BOARD, sample_path

MARKUP = "<img src=x onerror=alert(1)>"
UNCLOSED = "<b onmouseover=alert(2)"      # no closing '>': normalize's tag removal leaves it in the text
HOSTILE_ROW, UNCLOSED_ROW = 3, 5


def build_home(root, config, *, sample_rows=600, board_rows=60):
    """Run a nightly over the first ``sample_rows`` sample letters (two made hostile) and the first
    ``board_rows`` board messages (when ../shared has them) into ``root/home``; returns
    (home, the sample rows as dumped)."""
    dump = root / "dump"
    dump.mkdir(parents=True)
    sample = pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", nrows=sample_rows, keep_default_na=False)
    sample.loc[HOSTILE_ROW, "受理机关"] = MARKUP
    sample.loc[UNCLOSED_ROW, "标题"] = sample.loc[UNCLOSED_ROW, "标题"] + UNCLOSED
    sample.to_csv(dump / "letters.csv", index=False, encoding="utf-8-sig")
    files = [dump / "letters.csv"]
    if (SHARED_BOARD / "messages.xlsx").exists():
        pd.read_excel(SHARED_BOARD / "messages.xlsx", nrows=board_rows, engine="openpyxl").to_csv(dump / "board.csv", index=False,
                                                                              encoding="utf-8-sig")
        files.append(dump / "board.csv")
    home = root / "home"
    nightly.run_nightly(files, home, config, channel="online")
    return home, sample
