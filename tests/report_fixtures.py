"""Letters with every column classify and dedupe add, for the report and notebook tests.

``synthetic_letters()`` makes a small realistic frame without any other stage, so report
tests never wait for classify or dedupe; ``pipeline_run()`` runs the real stages over the
bundled sample once per session, for the tests that need real output.
"""
import functools
import json
import re

import numpy as np
import pandas as pd

from pipeline import schema
from pipeline.classifier.taxonomy import Taxonomy
from pipeline.config import PROJECT_ROOT

TOWNSHIPS = {"城关街道": ["城东村", "锦绣花园"], "东城街道": ["东湖村", "天悦府"], "柳溪镇": ["白石村", "柳溪村"],
             "桃源镇": ["杨柳村", "高坪村"], "青石镇": ["长岭村"], "黄土岭乡": ["茶园村"], "杉木乡": ["岩口村"]}
ADDRESSEES = [("青山县信访局", "county"), ("青山县人民政府", "county"), ("青山县人民法院", "county"),
              ("青山县住房和城乡建设局", "county"), ("江北市信访局", "city"), ("江南省信访局", "province"),
              ("国家信访局", "national"), ("柳溪镇人民政府", "township"), ("青山县县长信箱", "county")]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["建国", "秀英", "志强", "桂兰", "海波", "红梅", "德明", "春花", "国庆", "丽娟", "卫东", "玉兰"]
NATURES = ["求决", "求决", "求决", "申诉", "举报控告", "咨询", "意见建议"]
CHANNELS = [schema.LETTER, schema.LETTER, schema.LETTER, schema.VISIT, schema.VISIT, schema.PHONE, schema.ONLINE,
            schema.ONLINE, schema.MAILBOX]
RELATIONS = [schema.EXACT_COPY, schema.MULTI_ADDRESSED, schema.RESEND, schema.REPEAT_PETITION, schema.REPEAT_PETITION,
             schema.SAME_MATTER]
COMPLAINTS = {
    "国土资源/征地拆迁": "征地补偿标准过低，安置房至今未交付，要求按政策补偿。",
    "农村农业/土地承包经营": "邻居占用我家宅基地，地界纠纷村里调解不成。",
    "农村农业/村务管理": "村干部不公开村财，集体土地拍卖款去向不明。",
    "政法/涉法涉诉·法院": "法院判决生效两年仍执行不力，被执行人转移财产。",
    "劳动和社会保障/劳动社保": "包工头拖欠农民工工资三万元，多次讨薪无果。",
    "城乡建设/住房保障与房地产": "开发商延期交房，小区物业乱收费。",
    "环境保护/环境污染": "附近砖厂夜间噪音扰民，排放黑烟污染严重。",
    "民政/社会救助": "家庭困难申请低保被拒，请求重新核查。",
    "党务政务/咨询及其他": "请问办理相关手续需要哪些材料？",
}
LAW_LITIGATION_TOPICS = ("政法/涉法涉诉·法院", "政法/涉法涉诉·公安检察")


@functools.cache
def taxonomy():
    return Taxonomy.load(PROJECT_ROOT / "corpora" / "taxonomy.yaml")


def topic_codes():
    """The default taxonomy's labels (paths), first and second level."""
    return list(taxonomy().topics)


def synthetic_letters(n=1200, seed=7, start="2023-01-01", end="2024-12-31"):
    """Letters over two calendar years with planted repeats, groups and raw identifiers.

    Raw petitioner names, ID numbers, phones and addresses are present, as in real output of
    normalize, so tests can check that none of them reaches a report or a notebook.
    """
    rng = np.random.default_rng(seed)
    codes = topic_codes()
    common = list(COMPLAINTS)
    start, span = pd.Timestamp(start), (pd.Timestamp(end) - pd.Timestamp(start)).days
    rows, matter = [], 0
    while len(rows) < n:
        matter += 1
        topic = common[rng.integers(len(common))] if rng.random() < 0.8 else codes[rng.integers(len(codes))]
        topics = [topic] + ([common[rng.integers(len(common))]] if rng.random() < 0.1 else [])
        topics = list(dict.fromkeys(topics))
        township = list(TOWNSHIPS)[rng.integers(len(TOWNSHIPS))]
        village = TOWNSHIPS[township][rng.integers(len(TOWNSHIPS[township]))]
        first = start + pd.Timedelta(days=int(rng.integers(span)), hours=int(rng.integers(8, 18)))
        letters = int(rng.geometric(0.4)) if rng.random() < 0.6 else 1
        person = None
        for k in range(letters):
            if person is None or (k and rng.random() < 0.2):
                anonymous = rng.random() < 0.08
                name = "" if anonymous else SURNAMES[rng.integers(len(SURNAMES))] + GIVEN[rng.integers(len(GIVEN))]
                person = {"name": name, "anonymous": anonymous,
                          "id": "" if anonymous else f"339021{1950 + rng.integers(50)}0{rng.integers(1, 10)}"
                                                     f"{rng.integers(10, 29)}{rng.integers(1000, 9999)}",
                          "phone": "" if anonymous else f"13{rng.integers(100000000, 999999999)}",
                          "key": "" if anonymous else f"{int(rng.integers(2 ** 62)):016x}"}
            date = first + pd.Timedelta(days=int(k * rng.integers(3, 70)))
            if date > pd.Timestamp(end):
                break
            channel = CHANNELS[rng.integers(len(CHANNELS))]
            collective = channel == schema.VISIT and rng.random() < 0.15
            visitors = int(rng.integers(5, 40)) if collective else (int(rng.integers(1, 4)) if channel == schema.VISIT else None)
            joint = channel in (schema.LETTER, schema.ONLINE) and rng.random() < 0.08
            addressee, level = ADDRESSEES[rng.integers(len(ADDRESSEES))]
            address = "" if person["anonymous"] else f"江北市青山县{township}{village}{rng.integers(1, 12)}组"
            place = f"{township}{village}" if rng.random() < 0.7 or address else "本地"
            content = (f"我是{place}村民{person['name'] or ''}。{COMPLAINTS.get(topic, '反映有关问题。')}"
                       f"联系电话[手机号]。")
            confidence = float(np.clip(rng.beta(6, 2), 0.05, 0.999))
            top3 = [[topic, round(confidence, 3)], [codes[(codes.index(topic) + 1) % len(codes)],
                                                      round((1 - confidence) * 0.7, 3)],
                    [codes[(codes.index(topic) + 2) % len(codes)], round((1 - confidence) * 0.2, 3)]]
            rows.append({
                schema.LETTER_ID: f"L{len(rows) + 1:06d}", schema.RECEIVED_AT: date, schema.CHANNEL: channel,
                schema.PETITIONER_NAME: person["name"], schema.PETITIONER_ID_NUMBER: person["id"],
                schema.PETITIONER_PHONE: person["phone"], schema.ADDRESS: address,
                schema.ADDRESSEE: addressee, schema.ADDRESSEE_LEVEL: level,
                schema.TITLE: f"关于{place}的问题", schema.CONTENT: content,
                schema.SIGNATORIES: 6 if joint else pd.NA, schema.VISITORS: visitors if visitors else pd.NA,
                schema.CLEAN_TEXT: f"关于{place}的问题\n{content}", schema.PETITIONER_KEY: person["key"],
                schema.PETITIONER_KEY_BASIS: "none" if person["anonymous"] else "id",
                schema.TOPIC: topic, schema.TOPIC_CONFIDENCE: confidence, schema.TOPICS: "|".join(topics),
                schema.TOP3: json.dumps(top3), schema.NEEDS_REVIEW: confidence < 0.5,
                schema.RESPONSIBLE_BODY: "", schema.NATURE: NATURES[rng.integers(len(NATURES))],
                schema.LAW_LITIGATION: topic in LAW_LITIGATION_TOPICS,
                schema.ANONYMOUS: person["anonymous"], schema.JOINT: joint,
                schema.SIGNATORY_COUNT: 6 if joint else (0 if person["anonymous"] else 1),
                schema.COLLECTIVE: collective, schema.HOME_LEVEL: "county",
                schema.SKIP_LEVEL: level in ("city", "province", "national"),
                schema.CASE_ID: f"C{matter:05d}", "_k": k})
            if len(rows) >= n:
                break
    frame = pd.DataFrame(rows).sort_values(schema.RECEIVED_AT, kind="stable").reset_index(drop=True)
    first_ids = frame.groupby(schema.CASE_ID)[schema.LETTER_ID].transform("first")
    later = frame[schema.LETTER_ID] != first_ids
    frame[schema.DUPLICATE_OF] = first_ids.where(later, "")
    frame[schema.RELATION] = [RELATIONS[rng.integers(len(RELATIONS))] if x else "" for x in later]
    frame[schema.SIGNATORIES] = frame[schema.SIGNATORIES].astype("Int64")
    frame[schema.VISITORS] = frame[schema.VISITORS].astype("Int64")
    frame[schema.RECEIVED_AT] = frame[schema.RECEIVED_AT].astype("datetime64[ns]")
    return frame.drop(columns="_k")


def sample_files(sample=PROJECT_ROOT / "corpora" / "sample"):
    letters, truth = sample / "letters.csv", sample / "truth_letters.csv"
    return (letters, truth) if letters.exists() and truth.exists() else None


def _truth(letters, truth_path):
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    truth = truth.drop_duplicates(schema.LETTER_ID).set_index(schema.LETTER_ID)
    letters = letters[letters[schema.LETTER_ID].isin(truth.index)].reset_index(drop=True)
    return letters, truth.loc[letters[schema.LETTER_ID]].reset_index(drop=True)


def add_truth_classify(letters, truth_path, seed=3):
    """The columns classify adds, from the sample's truth (topics, nature, flags) and a
    made-up confidence."""
    letters, t = _truth(letters, truth_path)
    rng = np.random.default_rng(seed)
    codes = topic_codes()
    # the truth's topics as labels of the taxonomy (a sample labelled with the old topic codes maps
    # through their codes, kept by the office topics)
    topics = t["topics"].str.split("|").map(lambda labels: list(map(taxonomy().code_for, labels)))
    confidence = np.clip(rng.beta(6, 2, len(letters)), 0.05, 0.999)
    letters[schema.TOPIC] = topics.str[0].values
    letters[schema.TOPICS] = topics.str.join("|").values
    letters[schema.TOPIC_CONFIDENCE] = confidence
    letters[schema.TOP3] = [json.dumps([[top, round(c, 3)], [codes[(codes.index(top) + 1) % len(codes)],
                                                             round((1 - c) * 0.7, 3)]])
                            for top, c in zip(letters[schema.TOPIC], confidence)]
    letters[schema.NEEDS_REVIEW] = confidence < 0.5
    letters[schema.RESPONSIBLE_BODY] = ""
    letters[schema.NATURE] = t["nature"].values
    letters[schema.LAW_LITIGATION] = letters[schema.TOPIC].isin(LAW_LITIGATION_TOPICS).values
    letters[schema.ANONYMOUS] = (t["anonymous"] == "1").values
    signatories = pd.to_numeric(t["signatories"], errors="coerce").fillna(0).astype(int)
    letters[schema.SIGNATORY_COUNT] = signatories.values
    letters[schema.JOINT] = (signatories >= 2).values
    letters[schema.COLLECTIVE] = (pd.to_numeric(t["visitors"], errors="coerce").fillna(0) >= 5).values
    letters[schema.HOME_LEVEL] = t["home_level"].values
    letters[schema.SKIP_LEVEL] = (t["skip_level"] == "1").values
    return letters


def labels_for(letters, path, sample_dir=PROJECT_ROOT / "corpora" / "sample"):
    """Write the true first topic of ``letters`` (from the sample's truth) as letter_id,label."""
    files = sample_files(sample_dir)
    truth = pd.read_csv(files[1], dtype=str, keep_default_na=False, encoding="utf-8-sig")
    truth = truth[truth[schema.LETTER_ID].isin(letters[schema.LETTER_ID])]
    pd.DataFrame({schema.LETTER_ID: truth[schema.LETTER_ID], "label": truth["topics"].str.split("|").str[0]}).to_csv(
        path, index=False, encoding="utf-8-sig")
    return path


def write_run(path, letters):
    """Make ``path`` a run directory whose deduped.parquet holds ``letters``."""
    from pipeline.rundir import RunDir
    run = RunDir(path)
    run.write("dedupe", letters)
    return run


# --- One run for the session: the real stages over the bundled sample ------------------------

_BUILT = {}


def classify_available():
    """True when the default model is there to classify with."""
    return (PROJECT_ROOT / "models" / "default").is_dir()


def pipeline_run(tmp_path_factory):
    """(run dir, letters with raw identifiers, labels CSV, kind) built once per session.

    kind is "real" (ingest → normalize → segment → classify → dedupe → report over the
    bundled sample), "real dedupe, truth topics" (the same, with classify's columns taken
    from the sample's truth while the default model is missing) or "synthetic" (no sample:
    letters before the last quarter are put in ``<home>/archive/letters`` as history, the
    rest are the run).
    """
    if "run" in _BUILT:
        return _BUILT["run"]
    from pipeline.cli import main
    home = tmp_path_factory.mktemp("pipeline_home")
    run = home / "run"
    labels = home / "labels.csv"
    if sample_files():
        kind = "real" if classify_available() else "real dedupe, truth topics"
        for argv in (["ingest", sample_files()[0], "--run", run], ["normalize", "--run", run],
                     ["segment", "--run", run]):
            assert main([str(a) for a in argv]) == 0, argv
        if classify_available():
            assert main(["classify", "--run", str(run)]) == 0
        else:
            from pipeline.rundir import RunDir
            segmented = pd.read_parquet(run / "segmented.parquet")
            RunDir(run).write("classify", add_truth_classify(segmented, sample_files()[1]))
        assert main(["dedupe", "--run", str(run), "--index", str(home / "index")]) == 0
        letters = pd.read_parquet(run / "deduped.parquet")
        labels_for(letters, labels)
    else:
        kind, letters = "synthetic", synthetic_letters(n=1500, seed=5)
        truth = letters[[schema.LETTER_ID, schema.TOPIC]].rename(columns={schema.TOPIC: "label"})
        flip = truth.sample(frac=0.2, random_state=1).index      # the classifier got these wrong
        truth.loc[flip, "label"] = "环境保护/环境污染"
        truth.to_csv(labels, index=False, encoding="utf-8-sig")
        cut = letters[schema.RECEIVED_AT].max() - pd.DateOffset(months=3)
        archive = home / "archive" / "letters"
        archive.mkdir(parents=True)
        letters[letters[schema.RECEIVED_AT] < cut].to_parquet(archive / "earlier.parquet")
        write_run(run, letters[~(letters[schema.RECEIVED_AT] < cut)])
    assert main(["report", "--run", str(run)]) == 0
    _BUILT["run"] = (run, letters, labels, kind)
    return _BUILT["run"]


def raw_identifiers(letters):
    """Registered names (3+ characters, not masked or 匿名), ID and phone numbers, and addresses
    down to the house, room or village group: none may show in a report or notebook.

    Two-character names are checked letter by letter (test_notebooks): elsewhere they are
    too often part of a place name (江华 in 滨江华府). Village-level addresses (柳溪镇白石村)
    name where a matter is and may show."""
    raw = set()
    for column in (schema.PETITIONER_NAME, schema.PETITIONER_ID_NUMBER, schema.PETITIONER_PHONE, schema.ADDRESS):
        for value in letters[column]:
            if not isinstance(value, str) or len(value) < 2:
                continue
            if column == schema.PETITIONER_NAME and (len(value) < 3 or re.search(r"[某xX×*～~]|匿名|群众", value)):
                continue
            if column == schema.ADDRESS and not re.search(r"[0-9号室栋单元组]", value):
                continue
            raw.add(value)
    return raw
