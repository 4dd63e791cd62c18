"""The review workbench through Flask's test client, on a nightly home built from the sample (and a
few real board messages): every page and action, CSRF, escaping, accounts, person history, retrain."""
import dataclasses
import re
import shutil

import pandas as pd
import pytest

from pipeline import schema, train
from pipeline.classifier import textmodel
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.decisions import DecisionStore
from pipeline.review import security, training
from pipeline.review.app import create_app
from tests.config_files import write_config
from tests.conftest import sample_path
from tests.review_home import HOSTILE_ROW, MARKUP, UNCLOSED, UNCLOSED_ROW, build_home


@pytest.fixture(scope="module")
def home(tmp_path_factory, config):
    return build_home(tmp_path_factory.mktemp("review"), config)


@pytest.fixture
def client(home, config):
    app = create_app(home[0], config, secret_key="test")
    app.config["TESTING"] = True
    return app.test_client()


def token(client):
    """The session's CSRF token, as the pages carry it."""
    page = client.get("/person").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def snapshot(client):
    return client.application.extensions["workbench"].snapshot()


def a_case_with_links(client, size=3):
    """A case of ``size`` or more letters with a link between two of its letters."""
    snap = snapshot(client)
    for case_id in snap.cases.sort_values(schema.CASE_LETTERS, ascending=False).index:
        letters = snap.case_letters(case_id)
        links = snap.links_of(letters.index)[0]
        inside = links[links[schema.LETTER_A].isin(letters.index) & links[schema.LETTER_B].isin(letters.index)]
        if len(letters) >= size and len(inside):
            return case_id, letters, inside.iloc[0]
    pytest.fail("no case with a link in the test home")


def text(response):
    return response.get_data(as_text=True)


def copy_home(home, folder):
    """A copy of the test home's runs and index in ``folder``, without the decisions, accounts
    and candidates other tests left there."""
    copy = folder / "home"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("index", "decisions.sqlite*", "review"))
    shutil.copytree(home / "index", copy / "index")
    return copy


def test_every_page_answers_in_chinese(client):
    snap = snapshot(client)
    case_id = snap.cases.index[0]
    letter_id = snap.letters.index[0]
    for url, heading in (("/", "今晚"), ("/cases", "纯件"), (f"/cases/{case_id}", "关联"), ("/letters", "来信"),
                         (f"/letters/{letter_id}", "候选类别"), ("/queue", "待复核"), ("/person", "信访人历史"),
                         ("/retrain", "重新训练")):
        response = client.get(url)
        assert response.status_code == 200, url
        assert heading in text(response), url
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert client.get("/cases/no-such-case").status_code == 404
    assert client.get("/letters/no-such-letter").status_code == 404


def test_tonight_counts_are_the_runs(client):
    snap = snapshot(client)
    run = pd.read_parquet(snap.run / "deduped.parquet")
    page = text(client.get("/"))
    counts = [int(n) for n in re.findall(r'class="n">(\d+)<', page)]
    assert counts[:2] == [len(run), run[schema.CASE_ID].nunique()]
    assert counts[2] + counts[3] == pd.read_csv(snap.run / "cases.csv").shape[0]
    assert counts[4] == int((run[schema.NEEDS_REVIEW].astype(str) == "True").sum())


def test_case_filters_keep_only_matching_cases(client):
    bench = client.application.extensions["workbench"]
    cases = bench.snapshot().cases
    topic = cases[schema.CASE_TOPICS].str.split("|").explode().value_counts().index[0]
    found, total = bench.find_cases(topic=topic, min_letters=2, limit=None)
    expected = cases[cases[schema.CASE_TOPICS].str.split("|").map(lambda t: topic in t) & (cases[schema.CASE_LETTERS] >= 2)]
    assert total == len(expected) > 0 and set(found.index) == set(expected.index)
    page = text(client.get("/cases", query_string={"topic": topic, "min_letters": 2}))
    assert f"共 {total} 个纯件" in page
    first = cases.sort_values(schema.CASE_FIRST_DATE).iloc[len(cases) // 2][schema.CASE_FIRST_DATE]
    found, _ = bench.find_cases(date_to=first, limit=None)
    assert (found[schema.CASE_FIRST_DATE] <= first).all() and len(found) < len(cases)
    label = cases[cases[schema.CASE_LETTERS] > 1].iloc[0][schema.CASE_LABEL][:6]
    found = bench.find_cases(q=label, limit=None)[0]
    texts = bench.snapshot().letters[schema.CLEAN_TEXT]
    assert len(found) >= 1
    assert all(label in case[schema.CASE_LABEL] or any(label in texts.get(i, "") for i in case[schema.CASE_LETTER_IDS].split("|"))
               for _, case in found.iterrows())
    township = bench.townships()[0]
    assert all(township in t.split("|") for t in bench.find_cases(township=township, limit=None)[0]["_townships"])


def test_letter_search_filters(client):
    bench = client.application.extensions["workbench"]
    letters = bench.snapshot().letters
    found, total = bench.find_letters(q="征地", date_from="2024-02-01", limit=None)
    expected = letters[letters[schema.CLEAN_TEXT].str.contains("征地") & (letters[schema.RECEIVED_AT] >= "2024-02-01")]
    assert total == len(expected) > 0 and set(found.index) == set(expected.index)
    addressee = letters[schema.ADDRESSEE].value_counts().index[0]
    assert (bench.find_letters(addressee=addressee, limit=None)[0][schema.ADDRESSEE].str.contains(addressee)).all()
    assert client.get("/letters", query_string={"date_from": "not a date"}).status_code == 400


def test_markup_in_letters_is_escaped(client, home):
    _, sample = home
    for row in (HOSTILE_ROW, UNCLOSED_ROW):
        letter_id = sample.loc[row, "信件编号"]
        for url in (f"/letters/{letter_id}", f"/cases/{snapshot(client).case_of[letter_id]}"):
            page = text(client.get(url))
            assert MARKUP not in page and UNCLOSED not in page, url
    assert "&lt;img src=x onerror=alert(1)&gt;" in text(client.get(f"/letters/{sample.loc[HOSTILE_ROW, '信件编号']}"))
    assert "&lt;b onmouseover=alert(2)" in text(client.get(f"/letters/{sample.loc[UNCLOSED_ROW, '信件编号']}"))


def test_post_without_csrf_token_is_refused(client, home):
    case_id, letters, link = a_case_with_links(client)
    store = DecisionStore.for_home(home[0])
    before = len(store.rows())
    posts = [(f"/cases/{case_id}/different", {"letter_a": link[schema.LETTER_A], "letter_b": link[schema.LETTER_B]}),
             (f"/cases/{case_id}/detach", {"letter": letters.index[-1]}), (f"/cases/{case_id}/confirm", {}),
             (f"/cases/{case_id}/merge", {"other": case_id}), ("/decisions/undo", {"decision": "1"}),
             (f"/letters/{letters.index[0]}/topic", {"topic": "court"}), (f"/letters/{letters.index[0]}/reviewed", {}),
             ("/person", {"phone": "13800000000"}), ("/retrain/matcher/train", {}), ("/retrain/matcher/activate", {}),
             ("/retrain/topics/rollback", {}), ("/logout", {})]
    for url, form in posts:
        assert client.post(url, data=form).status_code == 400, url
        assert client.post(url, data={**form, "csrf_token": "forged"}).status_code == 400, url
    assert len(store.rows()) == before


def test_case_actions_are_stored_and_shown_at_once(client, home):
    case_id, letters, link = a_case_with_links(client)
    store = DecisionStore.for_home(home[0])
    csrf = token(client)
    a, b = link[schema.LETTER_A], link[schema.LETTER_B]
    response = client.post(f"/cases/{case_id}/different", data={"letter_a": a, "letter_b": b, "csrf_token": csrf})
    assert response.status_code == 302
    assert tuple(sorted((a, b))) in store.effective().cannot_link
    page = text(client.get(f"/cases/{case_id}"))
    assert "已标记非同一事项" in page and "非同一事项" in page
    detached = letters.index[-1]
    client.post(f"/cases/{case_id}/detach", data={"letter": detached, "csrf_token": csrf})
    assert detached in store.effective().detached
    assert "已移出" in text(client.get(f"/cases/{case_id}"))
    # merge: by search text first (a list to pick from), then by id
    other = snapshot(client).cases.drop(index=case_id).index[0]
    response = client.post(f"/cases/{case_id}/merge", data={"other": "工伤", "csrf_token": csrf})
    assert response.status_code == 302 and "merge_q=" in response.headers["Location"]
    client.post(f"/cases/{case_id}/merge", data={"other": other, "csrf_token": csrf})
    first_other = snapshot(client).case_letters(other).index[0]
    assert tuple(sorted((letters.index[0], first_other))) in store.effective().must_link
    # undo the merge from the page's decision list
    merge = store.rows()[-1]
    client.post("/decisions/undo", data={"decision": merge.id, "next": f"/cases/{case_id}", "csrf_token": csrf})
    assert tuple(sorted((letters.index[0], first_other))) not in store.effective().must_link
    assert store.rows()[-1].user == security.local_user()


def test_confirm_joins_every_letter_to_the_first(client, home):
    snap = snapshot(client)
    case_id = snap.cases[snap.cases[schema.CASE_LETTERS] == 2].index[0]
    letters = snap.case_letters(case_id).index
    client.post(f"/cases/{case_id}/confirm", data={"csrf_token": token(client)})
    assert tuple(sorted(letters[:2])) in DecisionStore.for_home(home[0]).effective().must_link


def test_topic_correction_and_review(client, home):
    store = DecisionStore.for_home(home[0])
    csrf = token(client)
    queue = client.application.extensions["workbench"].review_queue(limit=None)
    if not len(queue):
        pytest.skip("no letter needs review without the board's messages")
    confidences = queue[schema.TOPIC_CONFIDENCE].tolist()
    assert confidences == sorted(confidences)
    letter_id = queue.index[0]
    topics = list(client.application.extensions["workbench"].topic_names)[-2:]
    response = client.post(f"/letters/{letter_id}/topic", data={"topic": topics, "next": "/queue", "csrf_token": csrf})
    assert response.status_code == 302 and response.headers["Location"] == "/queue"
    assert store.effective().topics[letter_id] == topics
    assert f'data-letter="{letter_id}"' not in text(client.get("/queue"))
    assert "人工更正" in text(client.get(f"/letters/{letter_id}"))
    second = queue.index[1]
    client.post(f"/letters/{second}/reviewed", data={"csrf_token": csrf})
    assert store.effective().topics[second] == queue.loc[second, schema.TOPIC_LIST]
    assert client.post(f"/letters/{second}/topic", data={"topic": "no_such_topic", "csrf_token": csrf}).status_code == 400


def test_person_history_from_a_typed_id_number(client, home):
    _, sample = home
    ids = sample["身份证号"][sample["身份证号"] != ""]
    id_number = ids.value_counts().index[0]
    expected = set(sample.loc[sample["身份证号"] == id_number, "信件编号"])
    response = client.post("/person", data={"id_number": id_number, "csrf_token": token(client)})
    page = text(response)
    shown = set(re.findall(r'href="/letters/([^"]+)"', page))
    assert shown == expected and f"共 {len(expected)} 件次" in page
    assert id_number not in page and id_number not in response.request.url
    entry = security.read_access_log(home[0])[-1]
    assert entry["user"] == security.local_user() and entry["letters"] == len(expected)
    assert entry["typed"] == ["id"] and id_number not in str(entry)
    # name without an address gives no key: nothing found, nothing listed
    name = sample.loc[sample["身份证号"] == id_number, "信访人"].iloc[0]
    page = text(client.post("/person", data={"name": name, "csrf_token": token(client)}))
    assert "未能据所填内容算出信访人代号" in page and name not in page


def test_non_local_bind_needs_accounts(cli, home, monkeypatch, config):
    code, out, err = cli("review", "--home", home[0], "--host", "0.0.0.0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "add-user" in err
    passwords = iter(["correct horse battery", "correct horse battery"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(passwords))
    accounts_home = home[0].parent / "accounts-home"
    assert cli("review", "add-user", "alice", "--home", accounts_home)[0] == 0
    security.check_bind("0.0.0.0", security.Accounts(accounts_home))  # accounts exist: allowed
    stored = security.Accounts(accounts_home).users()["alice"]
    assert "correct horse" not in str(stored) and stored["n"] >= 2 ** 14


def test_accounts_log_in_with_secure_cookies(home, config, tmp_path):
    accounts_home = copy_home(home[0], tmp_path)
    security.Accounts(accounts_home).add("bob", "a long password")
    client = create_app(accounts_home, config, secret_key="test").test_client()
    response = client.get("/cases")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = text(client.get("/login"))
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert "用户名或密码不正确" in text(client.post("/login", data={"user": "bob", "password": "wrong password",
                                                                  "csrf_token": csrf}))
    response = client.post("/login", data={"user": "bob", "password": "a long password", "next": "/cases",
                                           "csrf_token": csrf})
    assert response.status_code == 302 and response.headers["Location"] == "/cases"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/cases").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 400  # a new session, a new token
    assert client.post("/logout", data={"csrf_token": token(client)}).status_code == 302
    assert client.get("/cases").status_code == 302


def test_retrain_the_match_model_compare_activate_and_roll_back(client, home, config, tmp_path):
    """A candidate trained on the sample's truth pairs and the home's decisions; its figures beside
    the active model's; activating keeps the active one for rollback."""
    active = tmp_path / "matcher"
    shutil.copytree(config.dedupe.matcher, active)
    # fewer folds and drawn pairs than the defaults: the same code, in a test's time
    local = dataclasses.replace(config, dedupe=dataclasses.replace(config.dedupe, matcher=active),
                                train_matcher=dataclasses.replace(config.train_matcher, cv_folds=3, truth_pairs=400))
    store = DecisionStore.for_home(home[0])
    case_id, letters, link = a_case_with_links(client)
    store.add(schema.DECISION_DIFFERENT, link[schema.LETTER_A], link[schema.LETTER_B], user="test")
    app = create_app(home[0], local, secret_key="test", pairs=[(str(home[0]),
                                                                 str(PROJECT_ROOT / "corpora/sample/truth_pairs.csv"))])
    retrain = app.test_client()
    page = text(retrain.get("/retrain"))
    counts = training.correction_counts(store.effective())
    assert f"非同一事项 {counts['different']} 对" in page
    csrf = token(retrain)
    response = retrain.post("/retrain/matcher/train", data={"csrf_token": csrf})
    assert response.status_code == 200, text(response)
    candidate = training.read_card(training.candidate_dir(home[0], training.MATCHER))
    kinds = {source["kind"]: source for source in candidate["data"]}
    assert kinds["judged"]["pairs"] == counts["same"] + counts["different"]  # the decisions, as judged pairs
    page = text(response)
    rows = dict(re.findall(r'data-figure="threshold"><th>链接阈值</th><td class="active">([^<]*)</td>'
                           r'<td class="candidate">([^<]*)</td>', page))
    assert rows, "threshold row with both models"
    assert float(next(iter(rows))) == training.read_card(active)["threshold"]
    assert float(next(iter(rows.values()))) == candidate["threshold"]
    before = (active / "model.joblib").read_bytes()
    assert retrain.post("/retrain/matcher/activate", data={"csrf_token": csrf}).status_code == 302
    assert training.read_card(active)["data"] == candidate["data"]
    assert (active.with_name("matcher.previous") / "model.joblib").read_bytes() == before
    assert "回退到上一个模型" in text(retrain.get("/retrain"))
    assert retrain.post("/retrain/matcher/rollback", data={"csrf_token": csrf}).status_code == 302
    assert (active / "model.joblib").read_bytes() == before
    assert training.read_card(active.with_name("matcher.previous"))["data"] == candidate["data"]


def test_topic_retrain_runs_the_train_command_with_decisions(config, home):
    """The topic model's retraining is the active model's own training command, into the candidate
    folder, with --with-decisions HOME (the flag issue 13 adds)."""
    card = training.read_card(config.classify.model_dir)
    argv = training.topic_train_argv(card, home[0], "/tmp/candidate")
    original = card["train_command"].split()
    assert argv[0] == "train" and argv[-2:] == ["--with-decisions", str(home[0])]
    assert argv[argv.index("--model") + 1] == "/tmp/candidate"
    assert argv[argv.index("--data") + 1] == original[original.index("--data") + 1]


def frequent_topic_letters(letters, truth, taxonomy):
    """The ``letters`` whose every truth topic (as a taxonomy label: the sample's codes or paths)
    labels two or more of them, as ``petition train`` requires; {letter id: labels}."""
    topics = {key: [taxonomy.code_for(t) for t in cell.split("|")] for key, cell in truth.items()}
    keep = [key for key in letters if key in topics]
    while True:  # dropping a letter can make another letter's topic rare
        counts = pd.Series([t for key in keep for t in topics[key]]).value_counts()
        kept = [key for key in keep if all(counts[t] >= 2 for t in topics[key])]
        if kept == keep:
            return {key: topics[key] for key in keep}
        keep = kept


def test_retrain_the_topic_model_with_a_correction_activate_and_roll_back(home, config, tmp_path):
    """A topic model trained on a few hundred sample letters; a topic correction made on the
    workbench; the retrained candidate (its own train command with the home's decisions) shown
    beside it, activated (the active one kept), answering the corrected topic, and rolled back."""
    from pipeline.classifier.taxonomy import Taxonomy
    home_dir = copy_home(home[0], tmp_path)
    letters = pd.read_csv(sample_path(), dtype=str, encoding="utf-8-sig", nrows=300, keep_default_na=False)
    truth = pd.read_csv(sample_path().with_name("truth_letters.csv"), dtype=str, encoding="utf-8-sig",
                        keep_default_na=False).set_index("letter_id")["topics"]
    taxonomy_file = PROJECT_ROOT / "corpora" / "taxonomy.yaml"
    labelled = frequent_topic_letters(letters["信件编号"], truth, Taxonomy.load(taxonomy_file))
    data = tmp_path / "letters.csv"
    letters[letters["信件编号"].isin(labelled)].to_csv(data, index=False, encoding="utf-8-sig")
    active = tmp_path / "topics"
    config_file = write_config(tmp_path, lambda raw: raw["classify"].update(model_dir=str(active), cv_folds=3))
    local = load_config(config_file)
    train.train_command(local, data=data, text_cols=["标题", "内容"], label_col="topics", label_sep="|",
                        labels=sample_path().with_name("truth_letters.csv"), taxonomy=taxonomy_file, model=active)
    before_card, before = training.read_card(active), (active / "model.joblib").read_bytes()
    # the letter (one the nightly saw) gets a topic the model knows and its truth lacks
    letter_id = next(iter(labelled))
    corrected = next(label for label in before_card["labels"] if label not in labelled[letter_id])
    app = create_app(home_dir, local, secret_key="test", config_file=config_file)
    retrain = app.test_client()
    csrf = token(retrain)
    assert retrain.post(f"/letters/{letter_id}/topic", data={"topic": corrected, "csrf_token": csrf}).status_code == 302
    assert "类别更正 1 件" in text(retrain.get("/retrain"))
    response = retrain.post("/retrain/topics/train", data={"csrf_token": csrf})
    assert response.status_code == 200, text(response)
    candidate = training.read_card(training.candidate_dir(home_dir, training.TOPICS))
    assert candidate["data"]["decisions"] == str(DecisionStore.for_home(home_dir).path)
    assert "1 rows labelled by analysts' topic decisions (1 letters decided)" in candidate["data"]["skipped"]
    assert candidate["data"]["rows"] == before_card["data"]["rows"]
    section = text(response).split('id="topics"')[1]
    for figure, level in (("accuracy", ""), ("macro_f1", ""), ("level2 accuracy", "_level2")):
        now, new = re.search(rf'data-figure="{figure}"><th>[^<]*</th><td class="active">([^<]*)</td>'
                             rf'<td class="candidate">([^<]*)</td>', section).groups()
        name = figure.split()[-1]
        assert (float(now), float(new)) == (before_card[f"cross_validation{level}"][name],
                                            candidate[f"cross_validation{level}"][name])
    assert retrain.post("/retrain/topics/activate", data={"csrf_token": csrf}).status_code == 302
    previous = active.with_name("topics.previous")
    assert training.read_card(active) == candidate and (previous / "model.joblib").read_bytes() == before
    # the corrected letter's text: the new model gives its corrected topic more weight than the old one
    row = letters.set_index("信件编号").loc[letter_id]
    weight = []
    for folder in (previous, active):
        model, card = textmodel.load_model(folder)
        weight.append(textmodel.predict_proba(model, [row["标题"] + "\n" + row["内容"]], processes=1)[0][
            card["labels"].index(corrected)])
    assert weight[1] > weight[0]
    # retraining the retrained model: its command's own --model and --with-decisions are replaced
    argv = training.topic_train_argv(candidate, home_dir, "/tmp/candidate")
    assert argv.count("--with-decisions") == argv.count("--model") == 1
    assert "回退到上一个模型" in text(retrain.get("/retrain"))
    assert retrain.post("/retrain/topics/rollback", data={"csrf_token": csrf}).status_code == 302
    assert (active / "model.joblib").read_bytes() == before and training.read_card(active) == before_card
