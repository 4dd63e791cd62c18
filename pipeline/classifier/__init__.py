"""The classifier wing: what turns cleaned letters into topics and attributes, and measures it.

``textmodel`` is the trainable text model (cleaning and segmenting, TF-IDF features, calibrated
LinearSVC; cross-validation, thresholds, saving and loading with a model card), ``ngrams`` the
numpy character n-gram counts its features use, ``hierarchy`` the two-level classifier and
``linear`` the scoring of its calibrated SVMs together, ``attributes`` the rule tables for letter
attributes (nature, 涉法涉诉, anonymous, joint, collective, skip-level), ``taxonomy`` the topic
list labels are checked against, ``predict`` the application of a topic model, a nature model
and the rules to a run's letters, and ``confusion`` the confusion-matrix CSV and chart that
training and evaluation write. The stages ``classify``, ``train`` and ``evaluate`` call it.
"""
