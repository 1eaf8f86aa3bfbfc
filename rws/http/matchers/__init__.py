"""Request matchers: one module per family, each exporting `ModuleSpec`s.

A matcher module declares the JSON shape of its config (decoded by `rws.config.decode`)
and the Rwsfile parser of its lines inside a named matcher (`@name path /a /b`). The
parser receives every line of its type in one matcher definition, positioned at the
type's token, and merges them the way Caddy's matchers do.

- `path`: `path`, `path_regexp` (and `RegexpConfig`, shared by every regexp matcher)
- `host`: `host`
- `request`: `method`, `protocol`, `tls`
- `header`: `header`, `header_regexp`
- `query`: `query`
- `ip`: `remote_ip`, `client_ip` (and the IP range checks used by other config)
- `logic`: `not`, `expression`
- `file`: `file`
- `vars`: `vars`, `vars_regexp`
"""
