"""TLS and PKI: the `tls` and `pki` apps, their config, their Rwsfile forms and adapter steps."""
