"""The HTTP app: its config (`config.py`), request matchers (`matchers/`) and, at run time,
the request and response types, compiled routes and placeholders."""
