"""The `reverse_proxy` handler: config (`config.py`) and Rwsfile directives (`directive.py`)."""
