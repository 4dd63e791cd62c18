"""Configuration files for tests: the project's configuration copied with a change."""
import dataclasses
from pathlib import Path

import yaml

from pipeline import config as config_module
from pipeline.config import DEFAULT_CONFIG


def write_config(folder, change=None, raw=None):
    """The project configuration as YAML in ``folder``, with ``change(raw)`` applied; paths are
    made absolute so the copy points at the project's files."""
    raw = raw if raw is not None else yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    for section in dataclasses.fields(config_module.Config):
        if section.name == "source":
            continue
        for field in dataclasses.fields(section.type):
            if field.metadata["rule"] is config_module.PATH:
                raw[section.name][field.name] = str((DEFAULT_CONFIG.parent / raw[section.name][field.name]).resolve())
    if change:
        change(raw)
    path = Path(folder) / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path
