"""The ingest wing: reading the files offices export and mapping them onto the letter schema.

``encodings`` decides how a text file's bytes become lines (UTF-8, GB18030, Big5, UTF-16) and
which delimiter a CSV uses; ``readers`` turns each format into a ``RawTable`` (CSV, XLSX, old
binary XLS, JSONL, Parquet); ``fields`` maps a ``RawTable`` onto the schema (dates, channels,
levels, control characters, lengths, record hashes). ``pipeline/ingest.py`` is the stage.
"""
