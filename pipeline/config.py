"""Configuration: load ``corpora/config.yaml`` (the only place tunables live) into checked dataclasses.

Every section of the YAML file becomes a frozen dataclass whose fields carry their rule
(``setting(RULE)``): the type and range a value must have. ``load_config`` checks every key
against its rule, so a wrong value, an unknown or a missing key stops at once with one line
naming the file, the key, the value and what is allowed (``ConfigError``), instead of failing
later or silently falling back to a default.

Paths are resolved once, at load, against the configuration file's folder: everything else
receives absolute ``Path`` objects and never joins paths itself.
"""
import dataclasses
import datetime as dt
import difflib
import os
import re
from pathlib import Path

import yaml

from pipeline import schema
from pipeline.errors import PetitionError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "corpora" / "config.yaml"
PERIODS = ("month", "quarter", "half", "year")  # report periods, shortest first


class ConfigError(PetitionError):
    """The configuration file is missing, unreadable, or has a wrong, unknown or missing key."""


# --- rules ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Rule:
    """What a setting may hold.

    ``test(value)`` is true for an allowed YAML value; ``allowed`` says in words what is
    allowed (for the error message); ``resolve(value, folder)`` turns an allowed value into
    the one the program uses (paths: absolute, against the configuration's folder).
    """

    allowed: str
    test: object
    resolve: object = None


def setting(rule):
    """A dataclass field checked by ``rule`` on load."""
    return dataclasses.field(metadata={"rule": rule})


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_regex(value):
    try:
        re.compile(value)
    except (re.error, TypeError):
        return False
    return isinstance(value, str)


def _is_date(value):
    try:
        dt.date.fromisoformat(value)
    except (ValueError, TypeError):
        return False
    return True


def integer(low):
    return Rule(f"an integer ≥ {low}", lambda v: _is_int(v) and v >= low)


def one_of(*values):
    return Rule("one of " + ", ".join(map(repr, values)), lambda v: isinstance(v, str) and v in values)


def list_of(item, allowed, min_items=0):
    return Rule(allowed, lambda v: isinstance(v, list) and len(v) >= min_items and all(map(item.test, v)),
                item.resolve and (lambda v, folder: [item.resolve(x, folder) for x in v]))


def mapping(keys, value, allowed):
    """A mapping whose keys are among ``keys`` (any string when None) and whose values pass ``value``."""
    return Rule(allowed, lambda v: isinstance(v, dict) and v != {}
                and all(isinstance(k, str) and (keys is None or k in keys) for k in v)
                and all(map(value.test, v.values())))


def _resolve_path(value, folder):
    return (folder / Path(value).expanduser()).resolve()


COUNT = integer(1)
FOLDS = integer(2)
NON_NEGATIVE = integer(0)
FRACTION = Rule("a number x with 0 < x ≤ 1", lambda v: _is_number(v) and 0 < v <= 1)
SHARE = Rule("a number x with 0 ≤ x < 1", lambda v: _is_number(v) and 0 <= v < 1)
POSITIVE = Rule("a number > 0", lambda v: _is_number(v) and v > 0)
WEIGHT = Rule("a number ≥ 0", lambda v: _is_number(v) and v >= 0)
FLAG = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a string", lambda v: isinstance(v, str))
WORD = Rule("a non-empty string", lambda v: isinstance(v, str) and v != "")
CHARACTER = Rule("a single character", lambda v: isinstance(v, str) and len(v) == 1)
DATE = Rule("a date YYYY-MM-DD (quoted)", _is_date)
REGEX = Rule("a regular expression", _is_regex)
SPARK_SIZE = Rule("a JVM memory size such as 4g or 512m, or \"\" (Spark's own setting)",
                  lambda v: isinstance(v, str) and re.fullmatch(r"([1-9][0-9]*[kmgt])?", v, re.IGNORECASE) is not None)
WORDS = list_of(WORD, "a list of non-empty strings")
REGEXES = list_of(REGEX, "a list of regular expressions")
PATH = Rule("a path (relative to the configuration file's folder)", lambda v: isinstance(v, str) and v != "",
            _resolve_path)
PATHS = list_of(PATH, "a list of paths (relative to the configuration file's folder)")
CHANNEL = one_of("", *schema.CHANNELS)
CHANNEL_WORDS = mapping(schema.CHANNELS, WORDS, f"a mapping of channels ({', '.join(schema.CHANNELS)}) "
                                                "to lists of words")
LEVEL_PATTERNS = mapping(schema.LEVELS, REGEXES, f"a mapping of levels ({', '.join(schema.LEVELS)}) "
                                                 "to lists of regular expressions")
MONEY_UNITS = mapping(None, POSITIVE, "a mapping of units to their value in yuan (numbers > 0)")
NGRAM_LENGTHS = list_of(COUNT, "a non-empty list of integers ≥ 1", min_items=1)
STATUS_VALUES = mapping(schema.STATUSES, WORDS, f"a mapping of statuses ({', '.join(schema.STATUSES)}) "
                                                "to lists of words")
AGE_BANDS = Rule("a list of increasing integers ≥ 1", lambda v: isinstance(v, list) and len(v) >= 1
                 and all(_is_int(x) and x >= 1 for x in v) and v == sorted(set(v)))
COMPOUND_SURNAMES = list_of(Rule("two characters", lambda v: isinstance(v, str) and len(v) == 2),
                            "a list of two-character surnames")


# --- sections -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PathsConfig:
    data_dir: Path = setting(PATH)
    dict_dir: Path = setting(PATH)
    sample_dump: Path = setting(PATH)


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    default_channel: str = setting(CHANNEL)
    excel_epoch: str = setting(DATE)
    channel_words: dict = setting(CHANNEL_WORDS)
    level_patterns: dict = setting(LEVEL_PATTERNS)
    max_text_chars: int = setting(COUNT)
    max_xlsx_bytes: int = setting(COUNT)
    batch_rows: int = setting(COUNT)
    processes: int = setting(COUNT)


@dataclasses.dataclass(frozen=True)
class StatusConfig:
    values: dict = setting(STATUS_VALUES)
    time_limit_days: int = setting(COUNT)
    extended_limit_days: int = setting(COUNT)
    age_bands: list = setting(AGE_BANDS)


@dataclasses.dataclass(frozen=True)
class NormalizeConfig:
    mask_char: str = setting(CHARACTER)
    id_mask: str = setting(WORD)
    phone_mask: str = setting(WORD)
    bank_mask: str = setting(WORD)
    landline_mask: str = setting(WORD)
    email_mask: str = setting(WORD)
    name_cues: list = setting(WORDS)
    name_follow_words: list = setting(WORDS)
    name_lead_words: list = setting(WORDS)
    name_not_given_chars: str = setting(TEXT)
    name_place_endings: str = setting(TEXT)
    compound_surnames: list = setting(COMPOUND_SURNAMES)
    name_common_idf: float = setting(POSITIVE)
    name_function_tags: list = setting(WORDS)
    processes: int = setting(COUNT)
    chunk_size: int = setting(COUNT)
    batch_rows: int = setting(COUNT)
    anonymous_names: list = setting(WORDS)
    boilerplate: list = setting(REGEXES)


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    hmm: bool = setting(FLAG)
    processes: int = setting(COUNT)
    chunk_size: int = setting(COUNT)
    batch_rows: int = setting(COUNT)
    min_token_chars: int = setting(COUNT)
    extra_dicts: list = setting(PATHS)


@dataclasses.dataclass(frozen=True)
class ClassifyConfig:
    model_dir: Path = setting(PATH)
    taxonomy: Path = setting(PATH)
    attributes: Path = setting(PATH)
    hmm: bool = setting(FLAG)
    max_chars: int = setting(NON_NEGATIVE)
    head_chars: int = setting(NON_NEGATIVE)
    head_weight: float = setting(WEIGHT)
    char_ngrams: list = setting(NGRAM_LENGTHS)
    min_df: int = setting(COUNT)
    max_features: int = setting(COUNT)
    svm_c: float = setting(POSITIVE)
    calibration_folds: int = setting(FOLDS)
    calibration_ensemble: bool = setting(FLAG)
    cv_folds: int = setting(FOLDS)
    seed: int = setting(NON_NEGATIVE)
    target_precision: float = setting(FRACTION)
    generated_review_threshold: float = setting(SHARE)
    processes: int = setting(COUNT)
    chunk_size: int = setting(COUNT)
    batch_rows: int = setting(COUNT)


@dataclasses.dataclass(frozen=True)
class DedupeConfig:
    shingle_size: int = setting(COUNT)
    num_perm: int = setting(COUNT)
    lsh_threshold: float = setting(FRACTION)
    seed: int = setting(NON_NEGATIVE)
    min_body_chars: int = setting(NON_NEGATIVE)
    compare_chars: int = setting(COUNT)
    tfidf_features: int = setting(COUNT)
    top_terms: int = setting(COUNT)
    name_suffixes: list = setting(WORDS)
    name_prefix_chars: int = setting(COUNT)
    name_stop_chars: str = setting(TEXT)
    generic_name_prefixes: list = setting(WORDS)
    name_common_idf: float = setting(WEIGHT)
    name_max_prefix_chars: int = setting(COUNT)
    name_boundary_suffixes: list = setting(WORDS)
    number_units: list = setting(WORDS)
    min_number_digits: int = setting(COUNT)
    own_date_days: int = setting(NON_NEGATIVE)
    money_units: dict = setting(MONEY_UNITS)
    amount_digits: int = setting(COUNT)
    qualified_suffixes: list = setting(WORDS)
    name_tags: list = setting(WORDS)
    full_names: bool = setting(FLAG)
    name_strip_tags: list = setting(WORDS)
    non_name_words: list = setting(WORDS)
    name_end_tags: list = setting(WORDS)
    name_end_chars: str = setting(TEXT)
    surnames: str = setting(WORD)
    near_same_similarity: float = setting(FRACTION)
    near_min_cosine: float = setting(FRACTION)
    block_terms: int = setting(COUNT)
    title_term_min_idf: float = setting(WEIGHT)
    max_block: int = setting(COUNT)
    max_lsh_bucket: int = setting(COUNT)
    max_petitioner_letters: int = setting(COUNT)
    multi_addressed_window_days: int = setting(NON_NEGATIVE)
    repeat_window_days: int = setting(NON_NEGATIVE)
    same_matter_window_days: int = setting(NON_NEGATIVE)
    matcher: Path = setting(PATH)
    case_probability: float = setting(FRACTION)
    possible_probability: float = setting(FRACTION)
    score_min_cosine: float = setting(FRACTION)
    case_pairs_max_letters: int = setting(integer(3))
    processes: int = setting(COUNT)
    chunk_size: int = setting(COUNT)
    chunk_pairs: int = setting(COUNT)
    index_lock_wait: int = setting(NON_NEGATIVE)


@dataclasses.dataclass(frozen=True)
class TrainMatcherConfig:
    target_precision: float = setting(FRACTION)
    truth_pairs: int = setting(COUNT)
    truth_weight: float = setting(WEIGHT)
    cv_folds: int = setting(FOLDS)
    seed: int = setting(NON_NEGATIVE)


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    period: str = setting(one_of(*PERIODS))
    taxonomy: Path = setting(PATH)
    township_pattern: str = setting(REGEX)
    township_text_fallback: bool = setting(FLAG)
    township_text_patterns: list = setting(REGEXES)
    township_suffixes: list = setting(WORDS)
    township_false_endings: list = setting(WORDS)
    min_change_base: int = setting(COUNT)
    case_label_chars: int = setting(integer(8))
    case_label_names: str = setting(REGEX)
    excerpt_chars: int = setting(integer(8))
    out_of_scope_topics: list = setting(WORDS)
    trend_months: int = setting(COUNT)
    top_cases: int = setting(COUNT)
    chart_rows: int = setting(COUNT)
    html_max_rows: int = setting(COUNT)


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    name: str = setting(one_of("local", "spark"))
    master: str = setting(WORD)
    driver_memory: str = setting(SPARK_SIZE)


@dataclasses.dataclass(frozen=True)
class Config:
    paths: PathsConfig
    engine: EngineConfig
    ingest: IngestConfig
    status: StatusConfig
    normalize: NormalizeConfig
    segment: SegmentConfig
    classify: ClassifyConfig
    dedupe: DedupeConfig
    train_matcher: TrainMatcherConfig
    report: ReportConfig
    source: Path


# --- loading --------------------------------------------------------------------------------

def _shown(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _unknown(source, where, key, known):
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return ConfigError(f"{source}: {where}{key}: unknown key ({hint})")


def _section(cls, values, name, source):
    """Check one section's mapping against ``cls``'s rules; returns the dataclass."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {name} = {_shown(values)}: expected a mapping of settings")
    fields = dataclasses.fields(cls)
    known = [field.name for field in fields]
    for key in values:
        if key not in known:
            raise _unknown(source, f"{name}.", key, known)
    built = {}
    for field in fields:
        rule = field.metadata["rule"]
        if field.name not in values:
            raise ConfigError(f"{source}: {name}.{field.name}: missing; expected {rule.allowed}")
        value = values[field.name]
        if not rule.test(value):
            raise ConfigError(f"{source}: {name}.{field.name} = {_shown(value)}: expected {rule.allowed}")
        built[field.name] = rule.resolve(value, source.parent) if rule.resolve else value
    return cls(**built)


def _read_yaml(path):
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:  # its message spans several lines: keep the problem and the place
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML: {problem}{where}") from exc


def load_config(path=None):
    """Read and check the configuration.

    Parameters
    ----------
    path : str or Path, optional
        YAML file; defaults to ``$PETITION_CONFIG`` or ``corpora/config.yaml``.

    Returns
    -------
    Config
        Every value checked against its rule; paths absolute, resolved against the file's
        folder; ``PETITION_DATA_DIR`` overrides ``paths.data_dir``.

    Raises
    ------
    ConfigError
        One line naming the file, the key, the value and what is allowed.
    """
    path = Path(path or os.environ.get("PETITION_CONFIG") or DEFAULT_CONFIG).expanduser().absolute()
    raw = _read_yaml(path)
    sections = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "source"}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of the sections {', '.join(sections)}")
    for name in raw:
        if name not in sections:
            raise _unknown(path, "", name, list(sections))
    for name in sections:
        if name not in raw:
            raise ConfigError(f"{path}: {name}: missing section")
    built = {name: _section(cls, raw[name], name, path) for name, cls in sections.items()}
    if os.environ.get("PETITION_DATA_DIR"):
        data_dir = Path(os.environ["PETITION_DATA_DIR"]).expanduser().resolve()
        built["paths"] = dataclasses.replace(built["paths"], data_dir=data_dir)
    return Config(source=path, **built)
