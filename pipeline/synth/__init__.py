"""The letter generator: synthetic petition letters (信访件) with planted repeats and their truth.

``settings`` holds the generated county's vocabulary and rates, ``draws`` the seeded random
draws and the ways letters write dates and money, ``phrases`` the template language and the
phrase banks, ``world`` the county loaded from ``corpora/synth/*.yaml`` (`load_world`),
``plan`` the planner that decides which letters exist and how they relate (`plan_letters`),
``render`` the renderer that writes each planned letter's text and register fields, and
``output`` the writer of the letters file and the truth files (`generate`). Run it as
``python -m pipeline.synth --n 5000 --seed 20241 --out corpora/sample/letters.csv``
(``make sample``); tests and benchmarks use it to plant duplicates whose truth is known.
With ``--training`` (``load_world(training=True)``) the topics of ``corpora/synth/training.yaml``
join the sample's, so that every first-level class of the national classification has letters:
the corpus ``make train`` trains the default model on (``modelcard`` marks its card).
"""
