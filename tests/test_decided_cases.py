"""Analyst decisions honoured by dedupe, through the real CLI: a `different` pair ends in two
cases even when linked or chained, a `same` pair in one with no link invented, a detached letter
alone, an undo puts the cases back, decisions survive `--rebuild`, decisions about letters not
indexed yet wait for them, and nights with decisions give the cases of one run over everything.

The bundled sample's first 600 letters and the hand-written letters of test_dedupe are prepared
once per module; each test dedupes a copy into its own home (index + decisions.sqlite)."""
import itertools
import json
import shutil

import pandas as pd
import pytest

from pipeline import schema
from pipeline.cli import main
from tests.conftest import sample_path
from tests.test_dedupe import LETTERS, write_dump

SAMPLE_LETTERS = 600


def segmented(base, dump):
    run = base / "run"
    for argv in (["ingest", dump, "--run", run], ["normalize", "--run", run], ["segment", "--run", run]):
        assert main([str(a) for a in argv]) == 0
    return run


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The sample's first letters, ingested, normalized and segmented."""
    base = tmp_path_factory.mktemp("sample600")
    letters = pd.read_csv(sample_path(), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    letters.iloc[:SAMPLE_LETTERS].to_csv(base / "letters.csv", index=False, encoding="utf-8-sig")
    return segmented(base, base / "letters.csv")


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("hand")
    return segmented(base, write_dump(base / "letters.csv", LETTERS))


class Office:
    """A home directory (index and decisions) and one run directory to dedupe again and again."""

    def __init__(self, cli, run, home):
        self.cli, self.run, self.home = cli, run, home

    def decide(self, *args):
        code, out, err = self.cli("decide", *args, "--home", self.home, "--user", "analyst")
        assert code == 0, err
        return out

    def dedupe(self, *options):
        code, out, err = self.cli("dedupe", "--run", self.run, "--index", self.home / "index", *options)
        assert code == 0, err
        return out

    def cases(self):
        """{letter id: case id} of the run's letters."""
        frame = pd.read_parquet(self.run / "deduped.parquet")
        return dict(zip(frame[schema.LETTER_ID], frame[schema.CASE_ID]))

    def letters(self):
        return pd.read_parquet(self.run / "deduped.parquet").set_index(schema.LETTER_ID)

    def links(self):
        return pd.read_csv(self.run / "links.csv", dtype=str, encoding="utf-8-sig")

    def applied(self):
        return json.loads((self.run / "summary.json").read_text(encoding="utf-8"))["analyst decisions"]


def office(cli, tmp_path, prepared):
    run = tmp_path / "run"
    shutil.copytree(prepared, run)
    result = Office(cli, run, tmp_path / "home")
    result.dedupe()
    return result


def linked_pairs(links):
    return {tuple(sorted(pair)) for pair in zip(links[schema.LETTER_A], links[schema.LETTER_B])}


def test_two_linked_letters_decided_different_end_in_two_cases(cli, tmp_path, sample_run):
    desk = office(cli, tmp_path, sample_run)
    before, links = desk.cases(), desk.links()
    sizes = pd.Series(before).value_counts()
    a, b = next(pair for pair in zip(links[schema.LETTER_A], links[schema.LETTER_B])
                if before[pair[0]] == before[pair[1]] and sizes[before[pair[0]]] == 2)
    crossing = desk.applied()["links between letters of different cases"]   # links the case threshold did not follow
    desk.decide("different", a, b, "--note", "two estates")
    desk.dedupe()
    after = desk.cases()
    assert after[a] != after[b] and {after[a], after[b]} == {a, b}      # each its own case
    assert (a, b) in linked_pairs(desk.links()) or (b, a) in linked_pairs(desk.links())  # the evidence stays
    assert (desk.letters().loc[[a, b], schema.DUPLICATE_OF] == "").all()
    assert {k: v for k, v in after.items() if k not in (a, b)} == {k: v for k, v in before.items() if k not in (a, b)}
    applied = desk.applied()
    assert applied["different (not one matter)"] == 1 and applied["links between letters of different cases"] == crossing + 1
    assert pd.read_csv(desk.run / "cases.csv", dtype=str)[schema.CASE_ID].isin([a, b]).sum() == 2


def test_two_unlinked_letters_decided_same_end_in_one_case_with_no_link_invented(cli, tmp_path, sample_run):
    desk = office(cli, tmp_path, sample_run)
    before = desk.cases()
    sizes = pd.Series(before).value_counts()
    first, second = sorted(letter for letter, case in before.items() if sizes[case] == 1)[:2]
    links_before = desk.links()
    desk.decide("same", second, first)
    desk.dedupe()
    after, letters = desk.cases(), desk.letters()
    assert after[first] == after[second]
    later = max((first, second), key=lambda letter: (letters.loc[letter, schema.RECEIVED_AT], letter))
    earlier = ({first, second} - {later}).pop()
    assert after[later] == earlier
    assert letters.loc[later, schema.DUPLICATE_OF] == earlier
    assert letters.loc[later, schema.RELATION] == schema.DECIDED_SAME
    pd.testing.assert_frame_equal(desk.links(), links_before)
    assert desk.applied()["same (one matter)"] == 1


def test_a_chain_is_split_when_its_ends_are_decided_different(cli, tmp_path, sample_run):
    desk = office(cli, tmp_path, sample_run)
    before, links = desk.cases(), desk.links()
    pairs = linked_pairs(links)
    neighbours = {}
    for a, b in pairs:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    # two letters of one case with no link between them: joined through the case's other letters
    chains = [(a, c) for a, c in itertools.combinations(sorted(neighbours), 2)
              if before[a] == before[c] and (a, c) not in pairs and (c, a) not in pairs]
    assert chains, "the sample's first letters hold no case joining two unlinked letters"
    a, c = chains[0]
    desk.decide("different", c, a)
    desk.dedupe()
    after = desk.cases()
    assert after[a] != after[c]
    assert desk.applied()["different (not one matter)"] == 1
    assert linked_pairs(desk.links()) == pairs


def test_detach_makes_a_one_letter_case_until_a_later_same(cli, tmp_path, sample_run):
    desk = office(cli, tmp_path, sample_run)
    before = desk.cases()
    sizes = pd.Series(before).value_counts()
    big = sizes.index[0]
    assert sizes[big] >= 3
    members = sorted(letter for letter, case in before.items() if case == big)
    letter = members[1]
    desk.decide("detach", letter)
    desk.dedupe()
    after = desk.cases()
    assert after[letter] == letter and list(after.values()).count(letter) == 1
    assert desk.letters().loc[letter, schema.DUPLICATE_OF] == ""
    assert desk.applied()["detached letters"] == 1
    desk.decide("same", letter, members[0])        # after the detach: joins it again
    desk.dedupe()
    assert desk.cases()[letter] == desk.cases()[members[0]]


def test_undo_restores_the_original_cases(cli, tmp_path, sample_run):
    desk = office(cli, tmp_path, sample_run)
    original = desk.letters()[[schema.CASE_ID, schema.DUPLICATE_OF, schema.RELATION]]
    cases_csv = pd.read_csv(desk.run / "cases.csv", dtype=str)
    links = desk.links()
    a, b = links[schema.LETTER_A].iloc[0], links[schema.LETTER_B].iloc[0]
    desk.decide("different", a, b)
    desk.decide("detach", links[schema.LETTER_A].iloc[1])
    desk.dedupe()
    assert not desk.letters()[[schema.CASE_ID, schema.DUPLICATE_OF, schema.RELATION]].equals(original)
    desk.decide("undo", "2")
    desk.decide("undo", "1")
    desk.dedupe()
    pd.testing.assert_frame_equal(desk.letters()[[schema.CASE_ID, schema.DUPLICATE_OF, schema.RELATION]], original)
    pd.testing.assert_frame_equal(pd.read_csv(desk.run / "cases.csv", dtype=str), cases_csv)


def test_decisions_survive_a_rebuild_of_the_index(cli, tmp_path, hand_run):
    desk = office(cli, tmp_path, hand_run)
    assert desk.cases()["L6"] == "L1" and desk.cases()["L8"] == "L7"
    desk.decide("different", "L1", "L6")
    desk.decide("detach", "L8")
    (desk.home / "index" / "manifest.json").write_text("{damaged")
    out = desk.dedupe("--rebuild")
    assert "moved the old index to" in out
    after = desk.cases()
    assert after["L6"] != after["L1"] and after["L8"] == "L8"
    assert after["L2"] == after["L3"] == after["L4"] == after["L5"] == "L1"


def test_a_different_decision_wins_over_same_decisions_that_contradict_it(cli, tmp_path, hand_run):
    desk = office(cli, tmp_path, hand_run)
    desk.decide("same", "L9", "L7")
    desk.decide("same", "L9", "L1")
    desk.decide("different", "L7", "L1")       # L7 = L9 = L1 yet L7 ≠ L1
    out = desk.dedupe()
    assert "1 `same` decisions not applied" in out
    after = desk.cases()
    assert after["L7"] != after["L1"]
    assert after["L9"] in (after["L7"], after["L1"])
    assert desk.applied()["same not applied: contradicted by a different decision"] == 1


def night(cli, base, name, rows):
    """One night: ``rows`` as a dump, taken through dedupe against the index of ``base/home``."""
    (base / name).mkdir(parents=True)
    run = segmented(base / name, write_dump(base / name / "letters.csv", rows))
    code, out, err = cli("dedupe", "--run", run, "--index", base / "home" / "index")
    assert code == 0, err
    return run


def case_sets(run):
    table = pd.read_csv(run / "cases.csv", dtype=str)
    return {case: frozenset(ids.split("|")) for case, ids in zip(table[schema.CASE_ID], table[schema.CASE_LETTER_IDS])}


def test_nights_with_decisions_give_the_cases_of_one_run_over_everything(cli, tmp_path):
    first_night = [row for row in LETTERS if row[0] in ("L1", "L3", "L7")]
    second_night = [row for row in LETTERS if row[0] not in ("L1", "L3", "L7")]
    decisions = [("different", "L1", "L6"), ("same", "L9", "L3"), ("detach", "L8")]
    nightly = tmp_path / "nights"
    for decision in decisions[:2]:
        assert cli("decide", *decision, "--home", nightly / "home")[0] == 0
    run = night(cli, nightly, "night1", first_night)
    applied = json.loads((run / "summary.json").read_text(encoding="utf-8"))["analyst decisions"]
    assert applied["waiting for a letter not indexed yet"] == 2     # L6 and L9 come the next night
    assert cli("decide", *decisions[2], "--home", nightly / "home")[0] == 0
    last = night(cli, nightly, "night2", second_night)
    once = tmp_path / "once"
    for decision in decisions:
        assert cli("decide", *decision, "--home", once / "home")[0] == 0
    everything = night(cli, once, "all", LETTERS)
    tonight = {row[0] for row in second_night}
    assert case_sets(last) == {case: ids for case, ids in case_sets(everything).items() if ids & tonight}
    # L9 = L3 joins L1's case (L3 is linked to L1); L6, linked only to letters of that case, is apart
    assert case_sets(everything) == {"L1": {"L1", "L2", "L3", "L4", "L5", "L9"}, "L6": {"L6"},
                                     "L7": {"L7"}, "L8": {"L8"}}
    letters = pd.read_parquet(last / "deduped.parquet").set_index(schema.LETTER_ID)
    assert tuple(letters.loc["L9", [schema.DUPLICATE_OF, schema.RELATION]]) == ("L3", schema.DECIDED_SAME)
