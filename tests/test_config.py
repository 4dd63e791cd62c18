"""Configuration: every kind of mistake stops at once with one line naming the file and key (exit 2)."""
import dataclasses
from pathlib import Path

import pytest
import yaml

from pipeline import config as config_module
from pipeline.config import DEFAULT_CONFIG, ConfigError, load_config
from tests.config_files import write_config


def set_value(section, key, value):
    def change(raw):
        raw[section][key] = value
    return change


def set_section(section, value):
    def change(raw):
        raw[section] = value
    return change


def one_line_error(cli, path, *words):
    """Run a stage through the CLI with the configuration at ``path``; the error is one line
    holding the file and every one of ``words``."""
    code, _, err = cli("--config", path, "segment", "--run", path.parent / "run")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_the_project_configuration_loads_with_absolute_paths(config):
    assert config.source == DEFAULT_CONFIG
    for path in (config.paths.dict_dir, config.paths.sample_dump, config.classify.model_dir,
                 config.classify.taxonomy, config.classify.attributes, config.report.taxonomy):
        assert isinstance(path, Path) and path.is_absolute()
    assert config.paths.dict_dir == DEFAULT_CONFIG.parent / "dict"
    assert config.classify.attributes.exists() and config.report.taxonomy.exists()


def test_paths_are_relative_to_the_configuration_folder(tmp_path, monkeypatch):
    def change(raw):
        raw["classify"]["model_dir"] = "models/mine"
        raw["segment"]["extra_dicts"] = ["places.txt"]
    folder = tmp_path / "office"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    loaded = load_config(write_config(folder, change))
    assert loaded.classify.model_dir == folder / "models" / "mine"
    assert loaded.segment.extra_dicts == [folder / "places.txt"]


def test_data_dir_environment_variable_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("PETITION_DATA_DIR", str(tmp_path / "cache"))
    assert load_config().paths.data_dir == tmp_path / "cache"


@pytest.mark.parametrize("section, key, value, words", [
    ("dedupe", "num_perm", "sixty-four", ["dedupe.num_perm", "'sixty-four'", "integer"]),
    ("dedupe", "lsh_threshold", 1.5, ["dedupe.lsh_threshold", "1.5", "0 < x ≤ 1"]),
    ("normalize", "processes", -3, ["normalize.processes", "-3", "≥ 1"]),
    ("segment", "hmm", "yes", ["segment.hmm", "true or false"]),
    ("report", "period", "week", ["report.period", "'week'", "'quarter'"]),
    ("ingest", "default_channel", "fax", ["ingest.default_channel", "'fax'", "'online'"]),
    ("ingest", "excel_epoch", "1899-13-45", ["ingest.excel_epoch", "YYYY-MM-DD"]),
    ("normalize", "boilerplate", ["(unclosed"], ["normalize.boilerplate", "regular expressions"]),
    ("dedupe", "money_units", {"元": 0}, ["dedupe.money_units", "> 0"]),
    ("classify", "char_ngrams", [], ["classify.char_ngrams", "non-empty list"]),
    ("dedupe", "name_suffixes", "村", ["dedupe.name_suffixes", "list"]),
    ("engine", "name", "hadoop", ["engine.name", "'hadoop'", "'local'", "'spark'"]),
    ("engine", "driver_memory", "4gb", ["engine.driver_memory", "'4gb'", "4g or 512m"]),
])
def test_a_wrong_value_names_key_value_and_what_is_allowed(tmp_path, cli, section, key, value, words):
    one_line_error(cli, write_config(tmp_path, set_value(section, key, value)), *words)


@pytest.mark.parametrize("value", ["4g", "512M", ""])
def test_driver_memory_takes_jvm_sizes_or_nothing(tmp_path, value):
    assert load_config(write_config(tmp_path, set_value("engine", "driver_memory", value))).engine.driver_memory == value


def test_an_unknown_key_is_named_with_the_closest_known_one(tmp_path, cli):
    def change(raw):
        raw["dedupe"]["num_perms"] = raw["dedupe"].pop("num_perm")
    one_line_error(cli, write_config(tmp_path, change), "dedupe.num_perms", "unknown key", "'num_perm'")


def test_an_unknown_section_is_named(tmp_path, cli):
    one_line_error(cli, write_config(tmp_path, lambda raw: raw.update(extras={})), "extras", "unknown key")


def test_a_missing_key_is_named(tmp_path, cli):
    one_line_error(cli, write_config(tmp_path, lambda raw: raw["classify"].pop("svm_c")),
                   "classify.svm_c", "missing", "a number > 0")


def test_a_missing_section_is_named(tmp_path, cli):
    one_line_error(cli, write_config(tmp_path, lambda raw: raw.pop("report")), "report", "missing section")


def test_a_missing_file_is_named(tmp_path, cli):
    one_line_error(cli, tmp_path / "nowhere.yaml", "cannot read configuration")


def test_unreadable_yaml_gives_the_line(tmp_path, cli):
    path = tmp_path / "config.yaml"
    path.write_text("paths:\n  data_dir: [unclosed\n  dict_dir: dict\n", encoding="utf-8")
    one_line_error(cli, path, "not valid YAML", "line")


def test_a_section_that_is_not_a_mapping(tmp_path, cli):
    one_line_error(cli, write_config(tmp_path, set_section("dedupe", [1, 2])), "dedupe", "mapping")


def test_every_setting_has_a_rule():
    sections = [f.type for f in dataclasses.fields(config_module.Config) if f.name != "source"]
    for section in sections:
        for field in dataclasses.fields(section):
            assert isinstance(field.metadata.get("rule"), config_module.Rule), (section.__name__, field.name)


def test_values_keep_their_yaml_types(config):
    """Values are checked, not converted (paths are resolved against the file's folder): the
    dedupe index's settings hash stays the same."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))["dedupe"]
    values = dataclasses.asdict(config.dedupe)
    assert values.pop("matcher") == (DEFAULT_CONFIG.parent / raw.pop("matcher")).resolve()
    assert values == raw


def test_config_error_is_one_line_from_python(tmp_path):
    with pytest.raises(ConfigError, match=r"dedupe\.num_perm = 0: expected an integer ≥ 1$"):
        load_config(write_config(tmp_path, set_value("dedupe", "num_perm", 0)))
