"""The dedup wing: find the letters that repeat one another and group them into cases.

Read top to bottom, one module per step: ``features`` (what is kept of each letter:
comparison text, MinHash band keys, specific names, TF-IDF terms) → ``candidates`` (pairs
worth scoring, from shared LSH bands, petitioners and same-matter keys: the keys are
``blocking``'s, each index shard keeping its letters' sorted) → ``scoring``
(similarities and the relation of each pair: the links) → ``cases`` (connected components
of the links), over the ``index`` of every letter seen before. ``minhash`` and ``matter``
are the estimators the features use; ``arrays`` holds the vectorised helpers they share.
The stage module ``pipeline.dedupe`` reads the run directory, calls these and writes.
"""
