"""Logs, metrics and tracing.

`log_config.py` holds the config side of logging: the writer and encoder modules
(`caddy.logging.writers.*`, `caddy.logging.encoders.*`), their Rwsfile forms, the `log`
directive and the `log` global option; the `filter` encoder's config and Rwsfile form
are in `log_filter_config.py`.
"""
