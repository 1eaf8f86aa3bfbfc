"""Rwsfile -> JSON config tree, in named steps (the order of Caddy's adapter).

1. parse and expand imports (`imports.load_text`);
2. evaluate the global options;
3. compile the named routes;
4. per site block: expand placeholder shorthands, collect matcher definitions, run the
   directives' parsers into a pile of config values;
5. group site blocks by listener address into servers (`servers.py`);
6. build the apps (http, tls, pki) and the top-level admin, storage and logging.
"""

from __future__ import annotations

from typing import Any

from rws import registry
from rws.errors import RwsfileError
from rws.handlers.subroute import NAMED_ROUTES_KEY
from rws.rwsfile import servers
from rws.rwsfile.pairing import pair_sites_with_listeners
from rws.rwsfile.directives import (
    AdaptState,
    ConfigValue,
    Warning,
    build_subroute,
    directive_table,
    expand_shorthands_in,
    parse_directives,
)
from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.imports import Document, ServerBlock, load_text
from rws.rwsfile.parse import Entry
from rws.rwsfile.sites import SiteBlock


def adapt_text(text: str, filename: str = "Rwsfile", environ: dict[str, str] | None = None) -> tuple[dict[str, Any], list[Warning]]:
    """Adapt an Rwsfile's text; returns the JSON config tree and the adapter's warnings."""
    doc = load_text(text, filename, environ)
    run = AdaptState(options={})
    evaluate_global_options(doc, run)
    named_routes = compile_named_routes(doc, run)
    sites = [parse_site(block, run) for block in doc.blocks if not block.is_named_route]
    pairings = pair_sites_with_listeners(sites, run.options)
    http_servers = servers.build_servers(pairings, run, named_routes)
    return assemble(http_servers, pairings, run), run.warnings


# --- global options ----------------------------------------------------------------------


def global_option_table() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for spec in registry.syntax_specs():
        table.update(spec.options)
    return table


def evaluate_global_options(doc: Document, run: AdaptState) -> None:
    if doc.global_options is None:
        return
    table = global_option_table()
    for entry in doc.global_options.entries:
        d = Dispenser(entry)
        parse = table.get(d.name)
        if parse is None:
            import difflib

            close = difflib.get_close_matches(d.name, list(table), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise d.error(f"unrecognized global option: {d.name}{hint}", d.tokens[0])
        run.options[d.name] = parse(d, run.options.get(d.name))
    if "order" in run.options:
        run.directive_order = list(run.options["order"])
    server_opts = run.options.get("servers")
    if server_opts:
        server_opts.sort(key=lambda o: len(o.listener_address), reverse=True)
        seen: set[str] = set()
        for opts in server_opts:
            if opts.listener_address in seen:
                raise RwsfileError(doc.file, doc.global_options.entries[0].line,
                                   f"cannot have 'servers' global options with duplicate listener addresses: {opts.listener_address}")
            seen.add(opts.listener_address)


# --- named routes ------------------------------------------------------------------------


def compile_named_routes(doc: Document, run: AdaptState) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """`&(name) { ... }` -> name: (route, names of the routes it invokes)."""
    routes: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for block in doc.blocks:
        if not block.is_named_route or not block.entries:
            continue
        name = block.keys[0].text
        if name in routes:
            raise block.keys[0].error(f"cannot have duplicate named_routes: {name}")
        entries = expand_shorthands_in(block.entries)
        run.state.pop(NAMED_ROUTES_KEY, None)
        values = parse_directives(entries, run, {}, block.keys, _files_of(entries), {})
        subroute = build_subroute(values, run, sort=True)
        sub_routes = subroute.get("routes", [])
        if len(sub_routes) == 1 and not sub_routes[0].get("match"):
            route = {"handle": [sub_routes[0]["handle"][0]]}
        else:
            route = {"handle": [subroute]}
        invoked = list(run.state.pop(NAMED_ROUTES_KEY, {}) or {})
        routes[name] = (route, invoked)
    return routes


# --- site blocks -------------------------------------------------------------------------


def parse_site(block: ServerBlock, run: AdaptState) -> SiteBlock:
    table = directive_table()
    for i, key in enumerate(block.keys):
        if i == 0 and key.text.startswith("@"):
            raise key.error(f"cannot define a matcher outside of a site block: '{key.text}'")
        if key.text in table and not key.quoted:
            raise key.error(f"parsed '{key.text}' as a site address, but it is a known directive; "
                            "directives must appear in a site block")
    entries = expand_shorthands_in(block.entries)
    site = SiteBlock(block.keys, entries, has_braces=block.has_braces)
    run.state.pop(NAMED_ROUTES_KEY, None)
    values = parse_directives(entries, run, {}, block.keys, _files_of(entries, block.keys), {}, block.has_braces)
    for value in values:
        site.pile.setdefault(value.cls, []).append(value)
    for name in run.state.pop(NAMED_ROUTES_KEY, {}) or {}:
        site.pile.setdefault("named_route", []).append(ConfigValue("named_route", name))
    return site


def _files_of(entries: tuple[Entry, ...], keys: tuple[Any, ...] = ()) -> tuple[str, ...]:
    files: set[str] = {k.file for k in keys}

    def walk(items: tuple[Entry, ...]) -> None:
        for e in items:
            files.update(t.file for t in e.tokens)
            if e.block:
                walk(e.block)

    walk(entries)
    return tuple(sorted(files))


# --- apps and top level ------------------------------------------------------------------


def assemble(http_servers: dict[str, Any], pairings: list[Any], run: AdaptState) -> dict[str, Any]:
    from rws.tls.adapt import build_pki_app, build_tls_app

    options = run.options
    config: dict[str, Any] = {}
    apps: dict[str, Any] = {}

    metrics = dict(options["metrics"]) if "metrics" in options else None
    for srv in http_servers.values():
        if "metrics" in srv:
            per_host = bool((metrics or {}).get("per_host")) or bool(srv["metrics"].get("per_host"))
            metrics = {"per_host": True} if per_host else {}
            del srv["metrics"]
    http_app: dict[str, Any] = {}
    for key in ("http_port", "https_port", "grace_period", "shutdown_delay"):
        if options.get(key):
            http_app[key] = options[key]
    if metrics is not None:
        http_app["metrics"] = metrics
    if http_servers:
        http_app["servers"] = http_servers
        apps["http"] = http_app

    tls_app = build_tls_app(pairings, options, run)
    if tls_app:
        apps["tls"] = tls_app
    pki_app = build_pki_app(pairings, options, run)
    if pki_app:
        apps["pki"] = pki_app

    if options.get("admin"):
        config["admin"] = options["admin"]
    if options.get("persist_config") == "off":
        config.setdefault("admin", {}).setdefault("config", {})["persist"] = False
    logging = collect_logs(pairings, options)
    if logging:
        config["logging"] = logging
    if options.get("storage"):
        config["storage"] = options["storage"]
    if "workers" in options:
        config["workers"] = options["workers"]
    if apps:
        config["apps"] = apps
    return config


def collect_logs(pairings: list[Any], options: dict[str, Any]) -> dict[str, Any] | None:
    """The `logging` section: global `log` options, then each site's `log` directives."""
    debug = "debug" in options
    named: list[Any] = []  # NamedCustomLog values, in Caddy's order
    has_default = False

    def add(ncl: Any) -> None:
        nonlocal has_default
        if not ncl.name:
            return
        if ncl.name == "default":
            has_default = True
        if debug and ncl.log is not None and not ncl.log.get("level"):
            ncl.log["level"] = "DEBUG"
        named.append(ncl)

    for value in options.get("log") or []:
        add(value.value)
    if not has_default and debug:
        from rws.observability.log_config import NamedCustomLog

        named.append(NamedCustomLog(name="default", log={"level": "DEBUG"}))
    for pairing in pairings:
        for site in pairing.blocks:
            for value in site.pile.get("custom_log", []):
                add(value.value)
    if not named:
        return None
    logs: dict[str, Any] = {}
    for ncl in named:
        if ncl.name == "default" and ncl.log is not None:
            logs["default"] = ncl.log
            break
    for ncl in named:
        if ncl.log is None or ncl.name == "default":
            continue
        logs[ncl.name] = ncl.log
        if ncl.log.get("include"):
            default = logs.setdefault("default", {})
            default["exclude"] = sorted(set(default.get("exclude", [])) | set(ncl.log["include"]))
    return {"logs": logs} if logs else None
