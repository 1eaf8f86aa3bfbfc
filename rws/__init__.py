"""rws: a web server and reverse proxy with automatic HTTPS, in the mould of Caddy."""

__version__ = "0.1.0"
