"""Analyst decisions (``petition decide``): every kind, undo, the latest decision winning, one-line
refusals, the list, two writers at once, a newer schema refused, and the file surviving an index
rebuild."""
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from pipeline.decisions import SCHEMA_VERSION, DecisionStore, Effective
from pipeline.dedup.index import DedupeIndex
from pipeline.errors import PetitionError


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def decide(cli, home):
    """Run ``petition decide ARGS... --home HOME --user alice``."""
    def run(*args, user="alice"):
        action, *rest = args
        return cli("decide", action, *rest, "--home", home, "--user", user)
    return run


def test_every_kind_is_written_printed_and_in_force(decide, home):
    assert decide("same", "188396", "283371", "--note", "one estate") == (
        0, "decision 1: 188396 = 283371 by alice\n", "")
    assert decide("different", "100", "200", user="bob")[1] == "decision 2: 100 ≠ 200 by bob\n"
    assert decide("detach", "300")[1] == "decision 3: detach 300 by alice\n"
    # a unique second-level name and the office topics' old codes become the taxonomy's labels
    # (paths); repeats are dropped
    assert decide("topic", "400", "征地拆迁|rural_land|land_requisition")[1] == (
        "decision 4: topic 400 = 国土资源/征地拆迁|农村农业/土地承包经营 by alice\n")
    store = DecisionStore.for_home(home)
    assert store.path == home / "decisions.sqlite" == DecisionStore.for_index(home / "index").path
    effective = store.effective()
    assert effective.must_link == {("188396", "283371")}
    assert effective.cannot_link == {("100", "200")}
    assert list(effective.detached) == ["300"] and effective.detached["300"].startswith("20")
    assert effective.topics == {"400": ["国土资源/征地拆迁", "农村农业/土地承包经营"]}
    rows = store.rows()
    assert [(r.id, r.kind, r.user) for r in rows] == [(1, "same", "alice"), (2, "different", "bob"),
                                                       (3, "detach", "alice"), (4, "topic", "alice")]
    assert rows[0].note == "one estate" and rows[0].at[:4].isdigit() and rows[0].at[-6] in "+-"
    with sqlite3.connect(store.path) as connection:  # WAL, versioned
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_pairs_are_ordered_and_the_latest_decision_wins(tmp_path):
    store = DecisionStore(tmp_path / "d.sqlite")
    store.add("same", "B", "A", user="u")
    store.add("different", "A", "B", user="u")       # different after same: different
    store.add("different", "C", "D", user="u")
    store.add("same", "D", "C", user="u")            # same after different: same
    store.add("topic", "E", value="x", user="u")
    store.add("topic", "E", value=["y", "z"], user="u")
    effective = store.effective()
    assert effective.must_link == {("C", "D")} and effective.cannot_link == {("A", "B")}
    assert effective.topics == {"E": ["y", "z"]}
    assert [d.status for d in store.list()] == ["replaced by 2", "in force", "replaced by 4", "in force",
                                                "replaced by 6", "in force"]
    assert [d.id for d in store.list(limit=2)] == [5, 6]


def test_undo_cancels_and_an_undone_undo_puts_it_back(decide, home):
    decide("same", "A", "B")
    decide("different", "A", "B")
    assert decide("undo", "2")[1] == "decision 3: undo 2 by alice\n"
    store = DecisionStore.for_home(home)
    assert store.effective().must_link == {("A", "B")} and not store.effective().cannot_link
    decide("undo", "3")                              # the undo undone: decision 2 holds again
    assert store.effective().cannot_link == {("A", "B")} and not store.effective().must_link
    assert [d.status for d in store.list()] == ["replaced by 2", "in force", "undone by 4", "in force"]
    decide("undo", "1")                              # what a later decision replaced can be undone too
    decide("undo", "2")
    assert store.effective() == Effective()
    assert len(store.rows()) == 6                    # nothing deleted or changed: rows only added


def test_detach_overrides_earlier_same_and_yields_to_later_same(tmp_path):
    store = DecisionStore(tmp_path / "d.sqlite")
    store.add("same", "L", "M", user="u")
    store.add("different", "L", "N", user="u")
    detach = store.add("detach", "L", user="u")
    effective = store.effective()
    assert effective.must_link == set() and effective.cannot_link == {("L", "N")}
    assert effective.detached == {"L": detach.at}
    store.add("same", "L", "P", user="u")            # after the detach: L's own case joins P
    assert store.effective().must_link == {("L", "P")} and "L" in store.effective().detached
    assert store.list()[0].status == "replaced by 3"


def test_conflicting_decisions_are_reported(decide, home):
    decide("same", "A", "B")
    decide("different", "A", "C")
    code, out, _ = decide("same", "B", "C")
    assert code == 0 and out.splitlines()[1].startswith("warning: A ≠ C is decided")
    assert DecisionStore.for_home(home).effective().conflicts() == [("A", "C")]


@pytest.mark.parametrize("args, message", [
    (("same", "A", "A"), "`same` needs two different letters, got A twice"),
    (("different", " ", "B"), "letter id must be a non-empty string, got ' '"),
    (("detach", ""), "letter id must be a non-empty string, got ''"),
    (("topic", "A", "no_such_topic|rural_land"), "not a topic of the taxonomy"),
    (("topic", "A", "|"), "topic code must be a non-empty string"),
    (("undo", "7"), "there is no decision 7 in"),
])
def test_bad_decisions_are_refused_in_one_line(decide, home, args, message):
    code, out, err = decide(*args)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("petition decide: error: ") and message in err
    assert DecisionStore.for_home(home).rows() == []


def test_undoing_twice_and_a_blank_user_are_refused(decide, home):
    decide("detach", "A")
    decide("undo", "1")
    code, _, err = decide("undo", "1")
    assert code == 2 and err == "petition decide: error: decision 1 is already undone by 2\n"
    code, _, err = decide("detach", "B", user=" ")
    assert code == 2 and err == "petition decide: error: user must be a non-empty string, got ' '\n"
    with pytest.raises(PetitionError, match="unknown decision kind 'merge'"):
        DecisionStore.for_home(home).add("merge", "A", "B", user="u")
    with pytest.raises(PetitionError, match="undo needs a decision number"):
        DecisionStore.for_home(home).add("undo", undoes="1", user="u")
    assert len(DecisionStore.for_home(home).rows()) == 2


def test_list_prints_a_table_and_json(decide, home, cli):
    assert decide("list") == (0, f"no decisions in {home / 'decisions.sqlite'}\n", "")
    assert not (home / "decisions.sqlite").exists()  # reading creates nothing
    decide("same", "188396", "283371", "--note", "same estate")
    decide("topic", "188396", "农村农业", user="bob")
    decide("undo", "1")
    code, out, _ = decide("list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0].split() == ["#", "decision", "user", "at", "status", "note"]
    assert lines[1].startswith("1  188396 = 283371") and "undone by 3" in lines[1] and lines[1].endswith("same estate")
    assert "topic 188396 = 农村农业" in lines[2] and " bob " in lines[2] and "in force" in lines[2]
    assert lines[3].startswith("3  undo 1")
    assert len({line.index("status") if i == 0 else line.index(s) for i, (line, s) in enumerate(
        zip(lines, ["status", "undone", "in force", "in force"]))}) == 1  # one column
    code, out, _ = cli("decide", "list", "--json", "--last", "2", "--index", home / "index")
    rows = json.loads(out)
    assert [(r["id"], r["kind"], r["value"], r["user"], r["status"]) for r in rows] == [
        (2, "topic", "农村农业", "bob", "in force"), (3, "undo", None, "alice", "in force")]
    assert set(rows[0]) == {"id", "kind", "letter_a", "letter_b", "value", "user", "at", "note", "undoes", "status"}


def test_the_user_defaults_to_the_login_name(tmp_path, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "clerk7")
    assert DecisionStore(tmp_path / "d.sqlite").add("detach", "A").user == "clerk7"


WRITER = textwrap.dedent("""
    import sys, time
    from pipeline.decisions import DecisionStore
    path, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))    # both begin at the same moment
    store = DecisionStore(path)
    for number in range(40):
        store.add("same", f"{name}{number}", f"{name}{number + 1}", user=name)
""")


def test_two_processes_writing_at_once_both_succeed(tmp_path):
    import time
    path, start = tmp_path / "home" / "decisions.sqlite", time.time() + 1.5
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(start)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "xy"]
    results = [writer.communicate(timeout=120) + (writer.returncode,) for writer in writers]
    assert all(code == 0 for _, _, code in results), results
    rows = DecisionStore(path).rows()
    assert [row.id for row in rows] == list(range(1, 81))
    assert sorted(row.user for row in rows) == ["x"] * 40 + ["y"] * 40
    assert len(DecisionStore(path).effective().must_link) == 80


def test_a_newer_schema_is_refused_in_one_line(home, decide, cli):
    decide("detach", "A")
    with sqlite3.connect(home / "decisions.sqlite") as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for args in (("list",), ("detach", "B")):
        code, out, err = decide(*args)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert f"decisions schema version {SCHEMA_VERSION + 1} is newer than this petition reads" in err
    with pytest.raises(PetitionError, match="newer"):
        DecisionStore.for_home(home).effective()


def test_a_file_that_is_not_a_database_is_refused(home, decide):
    home.mkdir()
    (home / "decisions.sqlite").write_text("not sqlite at all " * 100)
    code, _, err = decide("list")
    assert code == 2 and "not a decisions file" in err and err.count("\n") == 1


def test_decisions_survive_an_index_rebuild(tmp_path, decide, home, capsys):
    index = home / "index"
    decide("different", "A", "B")
    DedupeIndex.open(index, "hash-one").close()
    (index / "manifest.json").write_text("{damaged")    # an index only --rebuild can mend
    DecisionStore.for_index(index).add("same", "C", "D", user="bob")
    with DedupeIndex.open(index, "hash-two", rebuild=True):
        pass
    assert "moved the old index to" in capsys.readouterr().out
    aside = [p for p in home.iterdir() if p.name.startswith("index.old-")]
    assert len(aside) == 1 and not list(aside[0].glob("decisions*"))
    effective = DecisionStore.for_index(index).effective()
    assert effective.cannot_link == {("A", "B")} and effective.must_link == {("C", "D")}
