"""The review workbench: a local web application over a nightly home (``petition review``).

Analysts read tonight's letters and cases, correct links and topics (written to the decisions
store that dedupe and training honour), look up a person's history, and retrain the models
with their corrections. ``app`` builds the Flask application, ``pages`` holds one blueprint
per page, ``data`` every read, ``security`` accounts, CSRF and the access log, ``training``
the retraining. ``serve`` holds the CLI's entry points.
"""
