"""Petition pipeline: sort and de-duplicate incoming petition letters (信访).

Stages, one module each, run in this order over a run directory:
``ingest`` → ``normalize`` → ``segment`` → ``classify`` → ``dedupe`` → ``report``.
Run them with the ``petition`` command (see ``pipeline.cli``).
"""

__version__ = "0.1.0"
