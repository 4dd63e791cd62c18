"""The match model on real letters: `petition train-matcher` on judged board pairs, its card,
its scores on pairs it did not see, and the board's cases judged by reading."""
import copy
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from pipeline import schema
from pipeline.config import load_config
from pipeline.decisions import DecisionStore
from pipeline.dedup import quality
from pipeline.dedup.candidates import Candidates
from pipeline.dedup.evidence import FEATURES, evidence_ceiling, pair_evidence, shared_counts, tfidf_cosine
from pipeline.dedup.index import config_hash
from pipeline.dedup.matcher import Matcher
from pipeline.dedup.scoring import match_probability, score_pairs
from pipeline.ingest import file_sha256
from pipeline.train_matcher import GRID, home_pool, located, train_matcher_command
from tests.config_files import write_config


@pytest.fixture(scope="module")
def judged(board):
    return pd.read_csv(board / "judged_pairs.csv", dtype=str)


@pytest.fixture(scope="module")
def board_home(board_run, tmp_path_factory):
    """A nightly home holding the board's run (its segmented letters)."""
    home = tmp_path_factory.mktemp("board_home")
    (home / "run").mkdir()
    shutil.copy(board_run / "segmented.parquet", home / "run" / "segmented.parquet")
    return home


@pytest.fixture(scope="module")
def trained(board_home, judged, tmp_path_factory):
    """A matcher trained on one half of the judged pairs (no generated letters, no decisions)."""
    tune, test = quality.judged_halves(judged)
    folder = tmp_path_factory.mktemp("matcher")
    tune.to_csv(folder / "tune.csv", index=False)
    matcher = train_matcher_command(load_config(), pairs=[(board_home, folder / "tune.csv")], out=folder / "model")
    return matcher, folder, tune, test


def test_halves_share_no_letter(judged):
    first, second = quality.judged_halves(judged)
    letters = [set(h[schema.LETTER_A]) | set(h[schema.LETTER_B]) for h in (first, second)]
    assert not letters[0] & letters[1]
    assert len(first) + len(second) >= 0.8 * len(judged)
    assert min((h["label"] == "DIFF").sum() for h in (first, second)) >= 20  # both halves can measure precision


def test_card_records_the_data_and_out_of_fold_scores(trained):
    matcher, folder, tune, _ = trained
    card = json.loads((folder / "model" / "model_card.json").read_text(encoding="utf-8"))
    source = card["data"][0]
    assert source["sha256"] == file_sha256(folder / "tune.csv") and source["kind"] == "judged"
    assert source["pairs"] == len(tune) and source["same"] == (tune["label"] == "SAME").sum()
    scores = card["out_of_fold"]["judged"]
    assert 0.8 <= scores["precision"] <= 1 and 0.8 <= scores["recall"] <= 1, scores
    assert card["threshold"] in GRID.tolist() and card["threshold"] == matcher.threshold
    assert card["features"] == list(FEATURES)


def test_scores_pairs_it_did_not_see(trained, board_home, tmp_path):
    matcher, folder, _, test = trained
    pool = home_pool(board_home, load_config(), tmp_path / "pool")
    a, b = located(pool, test[schema.LETTER_A], test[schema.LETTER_B])
    probability = Matcher.load(folder / "model").probability(pair_evidence(pool, a, b))
    same = (test["label"] == "SAME").to_numpy()
    assert average_precision_score(same, probability) >= 0.9
    assert probability[same].mean() - probability[~same].mean() >= 0.3
    assert np.allclose(probability, matcher.probability(pair_evidence(pool, a, b)))  # saved = fitted


class _Unbounded(Matcher):
    """The same model, its ceiling not trusted: scoring computes every pair's evidence."""
    bounded_by_ceiling = False


def test_no_candidate_pair_scores_above_its_evidence_ceiling(board_home, config, tmp_path):
    settings = config.dedupe
    pool, matcher = home_pool(board_home, config, tmp_path / "pool"), Matcher.load(settings.matcher)
    candidates = Candidates(pool, settings)
    a, b = (np.concatenate(side) for side in zip(*(candidates.pairs(*bounds) for bounds in candidates.chunks(10**9))))
    cosine, shared = tfidf_cosine(pool, a, b), shared_counts(pool, a, b)
    probability = matcher.probability(pair_evidence(pool, a, b, cosine=cosine, shared=shared))
    ceiling = matcher.probability(evidence_ceiling(pool, a, b, cosine=cosine, shared=shared))
    assert matcher.bounded_by_ceiling and len(a) > 10_000
    assert (probability <= ceiling).all()
    floor = min(settings.possible_probability, matcher.threshold)
    skipped = (ceiling < floor) & (cosine < settings.near_min_cosine)
    assert skipped.mean() > 0.2, skipped.mean()  # the ceiling spares work on real letters
    # skipped pairs are P 0, every other pair keeps its P; the links are the same either way
    bounded, _ = match_probability(pool, a, b, matcher, settings, floor=floor)
    same_text = pool.bodies[a] == pool.bodies[b]
    assert np.array_equal(bounded, np.where(same_text, 1.0, np.where(skipped | (cosine < settings.score_min_cosine)
                                                                      & (shared == 0), 0.0, probability)))
    unbounded = _Unbounded(matcher.model, matcher.threshold, matcher.card)
    pd.testing.assert_frame_equal(score_pairs(pool, a, b, settings, matcher),
                                  score_pairs(pool, a, b, settings, unbounded))


def test_a_model_not_monotone_in_the_evidence_is_not_bounded_by_its_ceiling(config):
    matcher = Matcher.load(config.dedupe.matcher)
    for spoil in (lambda part: setattr(part.calibrators[0], "a_", -part.calibrators[0].a_),
                  lambda part: setattr(part.estimator, "monotonic_cst", None)):
        model = copy.deepcopy(matcher.model)
        spoil(model[-1].calibrated_classifiers_[0])
        assert not Matcher(model, matcher.threshold, matcher.card).bounded_by_ceiling


def test_a_bad_label_is_one_line_naming_file_row_and_column(cli, board_home, tmp_path):
    pairs = pd.DataFrame({"letter_a": ["188396", "188801"], "letter_b": ["283371", "246785"],
                          "label": ["SAME", "maybe"]})
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    code, _, err = cli("train-matcher", "--pairs", board_home, tmp_path / "pairs.csv", "--out", tmp_path / "m")
    assert code == 2 and err.strip().count("\n") == 0
    assert "pairs.csv: row 3, column label: 'maybe' is not SAME or DIFF" in err


def test_the_model_counts_by_content_not_by_folder(tmp_path, config):
    """The index's settings hash follows the model's files, wherever the configuration puts them."""
    shutil.copytree(config.dedupe.matcher, tmp_path / "copy")
    moved = load_config(write_config(tmp_path, lambda raw: raw["dedupe"].update(matcher=str(tmp_path / "copy"))))
    assert config_hash(moved.dedupe) == config_hash(config.dedupe)
    card = tmp_path / "copy" / "model_card.json"
    card.write_text(card.read_text(encoding="utf-8") + " ", encoding="utf-8")
    assert config_hash(moved.dedupe) != config_hash(config.dedupe)


def test_decisions_are_training_pairs(board_run, judged, tmp_path):
    """An office's `same`/`different` decisions train the model beside its judged pairs, and
    a `different` decision moves the retrained model's P for that pair down."""
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    shutil.copy(board_run / "segmented.parquet", home / "run" / "segmented.parquet")
    pairs = judged.iloc[:200]
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    plain = train_matcher_command(load_config(), pairs=[(home, tmp_path / "pairs.csv")], out=tmp_path / "plain")
    same = judged.iloc[200:][judged.iloc[200:]["label"] == "SAME"].iloc[:40]
    store = DecisionStore.for_home(home)
    for a, b in zip(same[schema.LETTER_A], same[schema.LETTER_B]):
        store.add(schema.DECISION_DIFFERENT, a, b, user="analyst")
    decided = train_matcher_command(load_config(), pairs=[(home, tmp_path / "pairs.csv")], out=tmp_path / "decided")
    source = next(s for s in decided.card["data"] if s["kind"] == "decided")
    assert source["pairs"] == 40 and source["same"] == 0
    pool = home_pool(home, load_config(), tmp_path / "pool")
    a, b = located(pool, same[schema.LETTER_A], same[schema.LETTER_B])
    evidence = pair_evidence(pool, a, b)
    assert decided.probability(evidence).mean() < plain.probability(evidence).mean() - 0.2
