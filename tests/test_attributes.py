"""Attributes: each rule table of corpora/attributes.yaml on hand-written letters."""
import pandas as pd
import pytest

from pipeline import schema
from pipeline.classifier.attributes import AttributeRules, letter_attributes, parse_number
from pipeline.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def rules(config):
    return AttributeRules.load(PROJECT_ROOT / config.classify.attributes)


def letter(text, name="王建国", basis="phone", signatories=None, visitors=None, channel="letter", level="county"):
    return {schema.CLEAN_TEXT: text, schema.PETITIONER_NAME: name, schema.PETITIONER_KEY_BASIS: basis,
            schema.SIGNATORIES: signatories, schema.VISITORS: visitors, schema.CHANNEL: channel,
            schema.ADDRESSEE_LEVEL: level}


def attributes(rules, *letters):
    frame = pd.DataFrame(letters).astype({schema.SIGNATORIES: "Int64", schema.VISITORS: "Int64"})
    return letter_attributes(frame, rules)


@pytest.mark.parametrize("text, nature", [
    ("举报村支书贪污征地补偿款，请纪委查处", "举报控告"),
    ("本人不服县法院判决，申请再审，请求纠正错案", "申诉"),
    ("请问灵活就业人员怎么缴纳养老保险？需要哪些材料？", "咨询"),
    ("建议在城关镇增设公交线路，方便群众出行", "意见建议"),
    ("公司拖欠我们三个月工资，请求帮助解决", "求决"),
    ("我家门前的路灯坏了", "求决"),                                  # nothing matches: fallback
    ("村主任挪用扶贫款，我们要求退还", "举报控告"),                    # accusation wins over request
    ("县民政局出具了答复意见，我不服该答复意见", "申诉"),              # 答复意见 is not a suggestion
])
def test_nature(rules, text, nature):
    assert rules.nature(text) == nature


@pytest.mark.parametrize("text, expected", [
    ("县人民法院判决生效两年仍执行不力", True),
    ("到派出所报案后至今未立案", True),
    ("申请强制执行，被执行人转移财产", True),
    ("请落实国家的征地补偿政策，执行统一标准", False),              # 执行 in its ordinary sense
    ("小区物业乱收费，业主不满", False),
])
def test_law_litigation(rules, text, expected):
    assert rules.law_litigation(text) is expected


@pytest.mark.parametrize("name, basis, text, expected", [
    ("", "none", "反映村里修路的问题", True),                    # normalize found no petitioner
    ("匿名", "name", "反映村里修路的问题", True),                # anonymous name value
    ("一村民", "name_address", "反映村里修路的问题", True),
    ("xxx", "id", "反映问题", False),                             # masked in the export, but an ID number
    ("匿名", "phone", "反映村里修路的问题", False),              # ... or a phone identifies the writer
    ("王建国", "id", "我不敢留真实姓名，怕遭到打击报复", True),   # the text withholds the name
    ("王建国", "id", "反映村里修路的问题", False),
    ("郭某", "name", "反映村里修路的问题", False),               # a masked surname is still a person
])
def test_anonymous(rules, name, basis, text, expected):
    assert rules.anonymous(name, basis, text) is expected


def test_joint_letters_and_signatory_count(rules):
    frame = attributes(
        rules,
        letter("要求落实安置房。联名人:熊涛、孙志刚、范飞、欧阳少华、任平 清河镇新河村"),
        letter("我们全村87户村民联名反映征地补偿问题"),
        letter("反映拖欠工资问题", signatories=12),                 # the register's count wins
        letter("反映拖欠工资问题。反映人:李某"),                   # one name: not joint
        letter("反映拖欠工资问题"),
    )
    assert frame[schema.SIGNATORY_COUNT].tolist() == [5, 87, 12, 1, 0]
    assert frame[schema.JOINT].tolist() == [True, True, True, False, False]


def test_collective_visits(rules):
    frame = attributes(
        rules,
        letter("反映征地问题", visitors=5, channel="visit"),
        letter("反映征地问题", visitors=4, channel="visit"),
        letter("村民三十余人到县政府上访，反映征地补偿", channel="visit"),
        letter("群众集体上访，反映拆迁问题", channel="visit"),
        letter("群众集体上访，反映拆迁问题", visitors=3, channel="visit"),  # the count wins over the word
        letter("去年村民三十余人到县政府上访，至今无果", channel="letter"),  # a letter telling of a past visit
    )
    assert frame[schema.COLLECTIVE].tolist() == [True, False, True, True, False, False]


@pytest.mark.parametrize("text, addressee_level, home, skip", [
    ("青山县清河镇荷花村村民反映宅基地纠纷", "city", "township", True),    # township matter sent to the city
    ("青山县清河镇荷花村村民反映宅基地纠纷", "county", "township", False),  # the county is the first level
    ("江北市社保局核定的养老金有误", "city", "city", False),
    ("江北市社保局核定的养老金有误", "province", "city", True),
    ("我们小区的物业不作为", "province", "", True),                         # no place: county assumed
    ("我们小区的物业不作为", "", "", False),                                # addressee level unknown
])
def test_home_and_skip_level(rules, text, addressee_level, home, skip):
    frame = attributes(rules, letter(text, level=addressee_level))
    assert frame[schema.HOME_LEVEL].iloc[0] == home
    assert bool(frame[schema.SKIP_LEVEL].iloc[0]) is skip


@pytest.mark.parametrize("text, number", [("17", 17), ("十二", 12), ("三十五", 35), ("两", 2),
                                          ("一百二十", 120), ("十", 10), ("余", 0)])
def test_parse_number(text, number):
    assert parse_number(text) == number


def test_every_column_has_a_value_and_a_type(rules):
    frame = attributes(rules, letter(""), letter("举报", name="", basis="none", channel="visit", level=""))
    assert not frame.isna().any().any()
    assert frame.dtypes[schema.SIGNATORY_COUNT] == "int64"
    for column in (schema.LAW_LITIGATION, schema.ANONYMOUS, schema.JOINT, schema.COLLECTIVE, schema.SKIP_LEVEL):
        assert frame.dtypes[column] == bool


def test_broken_rule_file_is_a_clear_error(tmp_path):
    from pipeline.errors import PetitionError
    path = tmp_path / "attributes.yaml"
    path.write_text("nature: {order: []}\n", encoding="utf-8")
    with pytest.raises(PetitionError, match="attributes.yaml"):
        AttributeRules.load(path)
