"""Configuration: load ``corpora/config.yaml`` (the only place tunables live) into dataclasses.

Every section of the YAML file becomes a frozen dataclass. Missing or unknown keys raise
``ConfigError`` naming the file and key, so a typo never silently falls back to a default.
"""
import dataclasses
import os
from pathlib import Path

import yaml

from pipeline.errors import PetitionError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "corpora" / "config.yaml"


class ConfigError(PetitionError):
    """The configuration file is missing, unreadable or has wrong keys."""


@dataclasses.dataclass(frozen=True)
class PathsConfig:
    data_dir: Path
    dict_dir: Path
    sample_dump: Path


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    default_channel: str
    excel_epoch: str
    channel_words: dict
    level_patterns: dict


@dataclasses.dataclass(frozen=True)
class NormalizeConfig:
    mask_char: str
    id_mask: str
    phone_mask: str
    processes: int
    chunk_size: int
    batch_rows: int
    anonymous_names: list
    boilerplate: list


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    hmm: bool
    processes: int
    chunk_size: int
    batch_rows: int
    min_token_chars: int
    extra_dicts: list


@dataclasses.dataclass(frozen=True)
class ClassifyConfig:
    model_dir: str
    taxonomy: str
    attributes: str
    hmm: bool
    max_chars: int
    head_chars: int
    head_weight: float
    char_ngrams: list
    min_df: int
    max_features: int
    svm_c: float
    calibration_folds: int
    calibration_ensemble: bool
    cv_folds: int
    seed: int
    target_precision: float
    processes: int
    chunk_size: int


@dataclasses.dataclass(frozen=True)
class DedupeConfig:
    shingle_size: int
    num_perm: int
    lsh_threshold: float
    seed: int
    min_body_chars: int
    compare_chars: int
    tfidf_features: int
    top_terms: int
    name_suffixes: list
    name_prefix_chars: int
    name_stop_chars: str
    generic_name_prefixes: list
    name_common_idf: float
    name_max_prefix_chars: int
    name_boundary_suffixes: list
    number_units: list
    min_number_digits: int
    own_date_days: int
    money_units: dict
    amount_digits: int
    qualified_suffixes: list
    name_tags: list
    full_names: bool
    name_strip_tags: list
    surnames: str
    near_same_similarity: float
    near_min_cosine: float
    block_terms: int
    max_block: int
    max_lsh_bucket: int
    max_petitioner_letters: int
    multi_addressed_window_days: int
    repeat_window_days: int
    same_matter_window_days: int
    name_weight: float
    max_names_counted: int
    repeat_min_score: float
    same_matter_two_names_cosine: float
    same_matter_one_name_cosine: float
    processes: int
    chunk_size: int
    chunk_pairs: int


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    period: str
    taxonomy: str
    township_pattern: str
    township_text_fallback: bool
    out_of_scope_topics: list
    trend_months: int
    top_cases: int
    chart_rows: int
    html_max_rows: int


@dataclasses.dataclass(frozen=True)
class Config:
    paths: PathsConfig
    ingest: IngestConfig
    normalize: NormalizeConfig
    segment: SegmentConfig
    classify: ClassifyConfig
    dedupe: DedupeConfig
    report: ReportConfig
    source: Path


def _section(cls, values, name, source):
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section '{name}' must be a mapping")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown, missing = set(values) - fields, fields - set(values)
    if unknown or missing:
        raise ConfigError(f"{source}: section '{name}': unknown keys {sorted(unknown)}, "
                          f"missing keys {sorted(missing)}")
    return cls(**values)


def load_config(path=None):
    """Read the configuration.

    Parameters
    ----------
    path : str or Path, optional
        YAML file; defaults to ``$PETITION_CONFIG`` or ``corpora/config.yaml``.

    Returns
    -------
    Config
        Paths are resolved against the project root; ``PETITION_DATA_DIR`` overrides
        ``paths.data_dir``.
    """
    path = Path(path or os.environ.get("PETITION_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    sections = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "source"}
    if not isinstance(raw, dict) or set(raw) != set(sections):
        raise ConfigError(f"{path}: expected top-level sections {sorted(sections)}")
    built = {name: _section(cls, raw[name], name, path) for name, cls in sections.items()}
    paths = {key: PROJECT_ROOT / value for key, value in dataclasses.asdict(built["paths"]).items()}
    if os.environ.get("PETITION_DATA_DIR"):
        paths["data_dir"] = Path(os.environ["PETITION_DATA_DIR"])
    built["paths"] = PathsConfig(**paths)
    return Config(source=path, **built)
