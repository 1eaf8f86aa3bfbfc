"""The `rws` command. Each command parses its options and calls one library function;
every error a user can cause ends as one line on stderr and exit code 1 (2 for runtime
failures), with the traceback only under `--debug`.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import click

from rws import __version__
from rws.errors import RwsError

DEFAULT_CONFIG = "Rwsfile"
RWSFILE_ADAPTERS = ("rwsfile", "caddyfile")


class _State:
    debug = False


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors (and file errors) into one line; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (RwsError, OSError) as exc:
            if _State.debug:
                raise
            _fail(str(exc) if isinstance(exc, RwsError) else f"{exc.strerror or exc}: {exc.filename}"
                  if getattr(exc, "filename", None) else str(exc))

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """rws: a web server and reverse proxy with automatic HTTPS."""
    _State.debug = debug


def main() -> None:
    cli(prog_name="rws")


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(__version__)


# --- config loading --------------------------------------------------------------------


def _load_envfiles(envfiles: tuple[str, ...]) -> None:
    for name in envfiles:
        for number, line in enumerate(Path(name).read_text("utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):]
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise RwsError(f"{name}:{number}: expected KEY=VALUE, got {line!r}")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            os.environ[key.strip()] = value


def _choose_adapter(config: str, adapter: str | None) -> str:
    if adapter:
        if adapter not in (*RWSFILE_ADAPTERS, "json"):
            raise RwsError(f"unknown config adapter {adapter!r}: rws has 'rwsfile' (alias 'caddyfile') and 'json'")
        return "json" if adapter == "json" else "rwsfile"
    base = os.path.basename(config).lower()
    if base.endswith(".json"):
        return "json"
    return "rwsfile"


def load_config(config: str, adapter: str | None) -> tuple[dict[str, Any], list[Any]]:
    """Read a config file (`-` for stdin) as a JSON tree, adapting an Rwsfile; returns (tree, warnings)."""
    from rws.rwsfile.adapt import adapt_text

    text = sys.stdin.read() if config == "-" else Path(config).read_text("utf-8")
    if _choose_adapter(config, adapter) == "json":
        try:
            tree = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RwsError(f"{config}:{exc.lineno}: config is not valid JSON: {exc.msg}; "
                           "did you mean to use a config adapter (the --adapter flag)?") from None
        if not isinstance(tree, dict):
            raise RwsError(f"{config}: config must be a JSON object")
        return tree, []
    return adapt_text(text, "stdin" if config == "-" else config)


def _print_warnings(warnings: list[Any]) -> None:
    for w in warnings:
        click.echo(f"warning: {w}", err=True)


@cli.command()
@click.option("--config", "-c", "config", default=DEFAULT_CONFIG, show_default=True, help="Config file to adapt.")
@click.option("--adapter", "-a", default=None, help="Config adapter (rwsfile, caddyfile).")
@click.option("--pretty", "-p", is_flag=True, help="Indent the JSON output.")
@click.option("--validate", "do_validate", is_flag=True, help="Also validate the result.")
@click.option("--envfile", multiple=True, help="Load KEY=VALUE lines into the environment first.")
@_user_errors
def adapt(config: str, adapter: str | None, pretty: bool, do_validate: bool, envfile: tuple[str, ...]) -> None:
    """Print the JSON config tree that an Rwsfile compiles to."""
    _load_envfiles(envfile)
    if adapter and adapter not in RWSFILE_ADAPTERS:
        raise RwsError(f"unknown config adapter {adapter!r}: rws adapts 'rwsfile' (alias 'caddyfile')")
    tree, warnings = load_config(config, adapter or "rwsfile")
    _print_warnings(warnings)
    if do_validate:
        from rws.config.model import validate_tree

        validate_tree(tree)
    click.echo(json.dumps(tree, indent="\t" if pretty else None, separators=None if pretty else (",", ":")))


@cli.command()
@click.option("--config", "-c", "config", default=DEFAULT_CONFIG, show_default=True, help="Config file to validate.")
@click.option("--adapter", "-a", default=None, help="Config adapter (rwsfile, caddyfile, json).")
@click.option("--envfile", multiple=True, help="Load KEY=VALUE lines into the environment first.")
@_user_errors
def validate(config: str, adapter: str | None, envfile: tuple[str, ...]) -> None:
    """Load a config fully (decode and provision every module) without serving."""
    from rws.runtime.generation import Generation

    _load_envfiles(envfile)
    tree, warnings = load_config(config, adapter)
    _print_warnings(warnings)
    Generation(tree, (config,)).close()
    click.echo("Valid configuration")


@cli.command("fmt")
@click.argument("path", default=DEFAULT_CONFIG)
@click.option("--overwrite", "-w", is_flag=True, help="Rewrite the file in place.")
@click.option("--diff", "-d", "show_diff", is_flag=True, help="Print a diff instead of the formatted file.")
@_user_errors
def fmt_command(path: str, overwrite: bool, show_diff: bool) -> None:
    """Format an Rwsfile canonically (`-` reads stdin)."""
    from rws.rwsfile.fmt import format_rwsfile, unified_diff_lines

    text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    formatted = format_rwsfile(text)
    if overwrite and path != "-":
        if formatted != text:
            Path(path).write_text(formatted, "utf-8")
        return
    if show_diff:
        for line in unified_diff_lines(text, formatted):
            click.echo(line)
    else:
        click.echo(formatted, nl=False)
    if formatted != text:
        _fail(f"{'stdin' if path == '-' else path}:1: input is not formatted; use '--overwrite' to update the file "
              "in place instead of previewing it")


@cli.command()
def environ() -> None:
    """Print the environment as rws sees it."""
    from rws.config.paths import autosave_path, config_dir, data_dir

    click.echo(f"rws.HomeDir={Path.home()}")
    click.echo(f"rws.AppDataDir={data_dir()}")
    click.echo(f"rws.AppConfigDir={config_dir()}")
    click.echo(f"rws.ConfigAutosavePath={autosave_path()}")
    click.echo(f"rws.Version={__version__}")
    click.echo(f"runtime.OS={sys.platform}")
    click.echo(f"runtime.Arch={platform.machine()}")
    click.echo(f"runtime.Python={platform.python_version()}")
    click.echo(f"runtime.NumCPU={os.cpu_count()}")
    click.echo(f"WorkingDir={os.getcwd()}")
    for key in sorted(os.environ):
        click.echo(f"{key}={os.environ[key]}")


@cli.command("list-modules")
@click.option("--versions", is_flag=True, help="Print the version of rws each module comes with.")
def list_modules(versions: bool) -> None:
    """Print the ID of every module rws has."""
    from rws.registry import MODULES

    for module_id in sorted(MODULES):
        click.echo(f"{module_id} {__version__}" if versions else module_id)
    click.echo("")
    click.echo(f"  Standard modules: {len(MODULES)}")


@cli.command("hash-password")
@click.option("--plaintext", "-p", default=None, help="The password to hash (else prompted, or read from stdin).")
@click.option("--algorithm", "-a", default="bcrypt", type=click.Choice(["bcrypt"]), show_default=True)
@click.option("--bcrypt-cost", default=14, type=click.IntRange(4, 31), show_default=True)
@_user_errors
def hash_password(plaintext: str | None, algorithm: str, bcrypt_cost: int) -> None:
    """Hash a password for basic_auth."""
    from rws.handlers.authentication import hash_password as make_hash

    if plaintext is None:
        if sys.stdin.isatty():
            plaintext = click.prompt("Enter password", hide_input=True, confirmation_prompt="Confirm password")
        else:
            plaintext = sys.stdin.readline().rstrip("\r\n")
    if not plaintext:
        raise RwsError("password cannot be empty")
    click.echo(make_hash(plaintext, bcrypt_cost))


# --- serving ---------------------------------------------------------------------------------


def _setup_process_logging() -> None:
    """Until a config names its logs: the default log, to stderr."""
    from rws.observability.logs import current

    current().install()


def _initial_config(config: str | None, adapter: str | None, resume: bool) -> tuple[Any, dict[str, Any]]:
    """The config to start with: the autosave (--resume), the given file, ./Rwsfile, or none."""
    from rws.runtime.process import ConfigSource
    from rws.runtime.runtime import load_autosave

    if resume:
        saved = load_autosave()
        if saved is not None:
            click.echo("resuming from the last autosaved configuration", err=True)
            return None, saved
        click.echo("no autosave file exists", err=True)
    path = config
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    if path is None:
        return None, {}

    def load() -> dict[str, Any]:
        tree, warnings = load_config(path, adapter)
        _print_warnings(warnings)
        return tree

    return ConfigSource(path, load), load()


@cli.command()
@click.argument("config_arg", required=False, metavar="[CONFIG]")
@click.option("--config", "-c", "config", default=None, help="Config file (default: ./Rwsfile if present).")
@click.option("--adapter", "-a", default=None, help="Config adapter (rwsfile, caddyfile, json).")
@click.option("--resume", "-r", is_flag=True, help="Start from the last autosaved config.")
@click.option("--watch", "-w", is_flag=True, help="Reload when the config file changes.")
@click.option("--envfile", multiple=True, help="Load KEY=VALUE lines into the environment first.")
@click.option("--pingback", hidden=True, default=None)
@_user_errors
def run(config_arg: str | None, config: str | None, adapter: str | None, resume: bool, watch: bool,
        envfile: tuple[str, ...], pingback: str | None) -> None:
    """Run rws in the foreground."""
    from rws.runtime.process import run as run_process

    _load_envfiles(envfile)
    _setup_process_logging()
    source, tree = _initial_config(config or config_arg, adapter, resume)
    sys.exit(run_process(source, tree, watch=watch, pingback=pingback))


@cli.command(hidden=True)
@click.option("--control-fd", type=int, required=True)
@click.option("--parent", type=int, required=True)
def worker(control_fd: int, parent: int) -> None:
    """A worker process of `rws run` (started by it, not by hand)."""
    from rws.runtime.worker import main

    _setup_process_logging()
    sys.exit(main(control_fd, parent))


@cli.command()
@click.option("--config", "-c", "config", default=None, help="Config file (default: ./Rwsfile if present).")
@click.option("--adapter", "-a", default=None, help="Config adapter.")
@click.option("--envfile", multiple=True, help="Load KEY=VALUE lines into the environment first.")
@click.option("--watch", "-w", is_flag=True, help="Reload when the config file changes.")
@_user_errors
def start(config: str | None, adapter: str | None, envfile: tuple[str, ...], watch: bool) -> None:
    """Start rws in the background and wait until it is up."""
    from rws.runtime.process import start_background

    args: list[str] = []
    if config:
        args += ["--config", config]
    if adapter:
        args += ["--adapter", adapter]
    for name in envfile:
        args += ["--envfile", name]
    if watch:
        args.append("--watch")
    pid = start_background(args)
    click.echo(f"Successfully started rws (pid={pid}) - rws is running in the background")


def _tree_for_address(config: str | None, adapter: str | None) -> dict[str, Any] | None:
    if config is None:
        return None
    tree, _ = load_config(config, adapter)
    return tree


@cli.command()
@click.option("--config", "-c", "config", default=None, help="Config file whose admin address to use.")
@click.option("--adapter", "-a", default=None, help="Config adapter.")
@click.option("--address", default=None, help="The admin API address (default: localhost:2019).")
@_user_errors
def stop(config: str | None, adapter: str | None, address: str | None) -> None:
    """Stop a running rws through its admin API."""
    from rws.runtime.process import admin_address, admin_request, check_admin_response

    target = admin_address(address, _tree_for_address(config, adapter))
    check_admin_response(*admin_request(target, "POST", "/stop"))


def _ca_root(ca: str, config: str | None, adapter: str | None, address: str | None) -> bytes:
    """The root certificate of a CA of the running rws, from its admin API."""
    from rws.runtime.process import admin_address, admin_request, check_admin_response

    target = admin_address(address, _tree_for_address(config, adapter))
    status, body = admin_request(target, "GET", f"/pki/ca/{ca}")
    check_admin_response(status, body)
    try:
        return str(json.loads(body)["root_certificate"]).encode()
    except (ValueError, KeyError, TypeError):
        raise RwsError("the admin API gave no root certificate") from None


@cli.command()
@click.option("--ca", default="local", show_default=True, help="The CA whose root to trust.")
@click.option("--config", "-c", "config", default=None, help="Config file whose admin address to use.")
@click.option("--adapter", "-a", default=None, help="Config adapter.")
@click.option("--address", default=None, help="The admin API address (default: localhost:2019).")
@_user_errors
def trust(ca: str, config: str | None, adapter: str | None, address: str | None) -> None:
    """Install a CA's root (the local CA by default) into the system trust store."""
    from rws.tls.trust import install

    path = install(_ca_root(ca, config, adapter, address))
    click.echo(f"the root of CA {ca!r} is trusted: {path}")


@cli.command()
@click.option("--ca", default="local", show_default=True, help="The CA whose root to remove.")
@click.option("--cert", "cert", default=None, help="A root certificate file to remove (instead of asking rws).")
@click.option("--config", "-c", "config", default=None, help="Config file whose admin address to use.")
@click.option("--adapter", "-a", default=None, help="Config adapter.")
@click.option("--address", default=None, help="The admin API address (default: localhost:2019).")
@_user_errors
def untrust(ca: str, cert: str | None, config: str | None, adapter: str | None, address: str | None) -> None:
    """Remove a CA's root from the system trust store."""
    from rws.tls.trust import uninstall

    try:
        root = Path(cert).read_bytes() if cert else _ca_root(ca, config, adapter, address)
    except OSError as exc:
        raise RwsError(f"reading {cert}: {exc.strerror or exc}") from None
    path = uninstall(root)
    click.echo(f"removed {path}" if path else "that root was not in the system trust store")


@cli.command()
@click.option("--config", "-c", "config", default=DEFAULT_CONFIG, show_default=True, help="Config file to load.")
@click.option("--adapter", "-a", default=None, help="Config adapter.")
@click.option("--address", default=None, help="The admin API address (default: from the config, or localhost:2019).")
@click.option("--force", "-f", is_flag=True, help="Reload even if the config is unchanged.")
@_user_errors
def reload(config: str, adapter: str | None, address: str | None, force: bool) -> None:
    """Load a new config into a running rws."""
    from rws.runtime.process import admin_address, admin_request, check_admin_response

    tree, warnings = load_config(config, adapter)
    _print_warnings(warnings)
    target = admin_address(address, tree)
    headers = {"Cache-Control": "must-revalidate"} if force else {}
    check_admin_response(*admin_request(target, "POST", "/load", json.dumps(tree).encode(), headers=headers))


def _one_shot(tree: dict[str, Any]) -> None:
    """Run a config built from command-line options, with the admin API off."""
    from rws.runtime.process import run as run_process

    _setup_process_logging()
    tree.setdefault("admin", {})["disabled"] = True
    tree["admin"].setdefault("config", {})["persist"] = False
    sys.exit(run_process(None, tree))


@cli.command("file-server")
@click.option("--root", "-r", default=".", show_default=True, help="The folder to serve.")
@click.option("--listen", "-l", default=None, help="Address to listen on (default :80, or :443 with --domain).")
@click.option("--domain", "-d", default=None, help="Serve this domain name only.")
@click.option("--browse", "-b", is_flag=True, help="List folders that have no index file.")
@click.option("--templates", "-t", is_flag=True, help="Execute templates (not supported yet).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@_user_errors
def file_server(root: str, listen: str | None, domain: str | None, browse: bool, templates: bool,
                access_log: bool) -> None:
    """Serve a folder in one command."""
    if templates:
        raise RwsError("--templates: the templates handler is not available in rws yet")
    handler: dict[str, Any] = {"handler": "file_server", "root": root}
    if browse:
        handler["browse"] = {}
    route: dict[str, Any] = {"handle": [handler]}
    if domain:
        route["match"] = [{"host": [domain]}]
    server: dict[str, Any] = {"listen": [listen or (":443" if domain else ":80")], "routes": [route]}
    if access_log:
        server["logs"] = {}
    _one_shot({"apps": {"http": {"servers": {"static": server}}}})


@cli.command()
@click.argument("body", required=False, default=None)
@click.option("--listen", "-l", default=":0", show_default=True, help="Address to listen on.")
@click.option("--status", "-s", default=200, show_default=True, type=int, help="Status code of every response.")
@click.option("--header", "-H", "headers", multiple=True, help='A response header, "Field: value" (repeatable).')
@click.option("--body", "body_option", default=None, help="The response body (or give it as an argument).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@_user_errors
def respond(body: str | None, listen: str, status: int, headers: tuple[str, ...], body_option: str | None,
            access_log: bool) -> None:
    """Answer every request with a fixed response."""
    text = body_option if body_option is not None else body
    if text is None and not sys.stdin.isatty():
        text = sys.stdin.read()
    handler: dict[str, Any] = {"handler": "static_response", "status_code": status}
    if text:
        handler["body"] = text
    fields: dict[str, list[str]] = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise RwsError(f"--header {header!r}: expected 'Field: value'")
        fields.setdefault(name.strip(), []).append(value.strip())
    if fields:
        handler["headers"] = fields
    server: dict[str, Any] = {"listen": [listen], "routes": [{"handle": [handler]}]}
    if access_log:
        server["logs"] = {}
    click.echo(f"Server address: {listen}", err=True)
    _one_shot({"apps": {"http": {"servers": {"static": server}}}})


@cli.command("reverse-proxy")
@click.option("--from", "-f", "from_address", default="localhost", show_default=True,
              help="Address to receive traffic on: host, :port or URL.")
@click.option("--to", "-t", "to", multiple=True, help="Upstream address: host:port, URL or unix//path (repeatable).")
@click.option("--change-host-header", "-c", is_flag=True, help="Set Host to the upstream's address.")
@click.option("--insecure", is_flag=True, help="Do not verify the certificates of https:// upstreams.")
@click.option("--disable-redirects", "-r", is_flag=True, help="Do not redirect HTTP to HTTPS.")
@click.option("--internal-certs", "-i", is_flag=True, help="Get certificates from the local CA.")
@click.option("--header-up", "-H", multiple=True, help='Set a request header, "Field: value" (repeatable).')
@click.option("--header-down", "-d", multiple=True, help='Set a response header, "Field: value" (repeatable).')
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option("--debug", "-v", is_flag=True, help="Log at debug level and show tracebacks.")
@_user_errors
def reverse_proxy(from_address: str, to: tuple[str, ...], change_host_header: bool, insecure: bool,
                  disable_redirects: bool, internal_certs: bool, header_up: tuple[str, ...],
                  header_down: tuple[str, ...], access_log: bool, debug: bool) -> None:
    """A whole reverse proxy in one command."""
    import logging

    from rws.handlers.reverse_proxy.command import proxy_plan

    _State.debug = _State.debug or debug
    plan = proxy_plan(from_address=from_address, to=to, change_host_header=change_host_header, insecure=insecure,
                      disable_redirects=disable_redirects, internal_certs=internal_certs, header_up=header_up,
                      header_down=header_down, access_log=access_log, debug=debug)
    _print_warnings(list(plan.warnings))
    _setup_process_logging()
    logging.getLogger(__name__).info("proxying", extra={"from": plan.from_url, "to": list(plan.dials)})
    _one_shot(plan.tree)
