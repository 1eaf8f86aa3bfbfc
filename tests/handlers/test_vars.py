"""`vars`, `root`, `log_skip` and `skip_log`: the vars handler."""

from __future__ import annotations

import pytest

from rws.config.decode import decode
from rws.errors import ConfigError
from rws.handlers.vars import VarsConfig
from rws.rwsfile.adapt import adapt_text


@pytest.mark.parametrize("text", [
    ":80\nvars foo bar\n",
    ":80\nvars {\n\ta 1\n\tb \"2\"\n\tc true\n\td 1.5\n\te \"x y\"\n}\n",
    ":80\nvars /x a b\n",
    ":80\nvars\n",
    ":80\nvars /a x 1\nvars x 0\n",
    ":80\nroot * /srv\n",
    ":80\nroot /x /srv/x\nroot * /srv\n",
    ":80\n@a path /a\nroot @a /srv/a\nroot * /srv\n",
    ":80\nroot * {http.vars.site}\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_root_with_one_argument_is_the_path(site_handlers):
    [(handler, match)] = site_handlers(":80\nroot /srv\n")
    assert handler == {"handler": "vars", "root": "/srv"}
    assert match == []


@pytest.mark.parametrize("name", ["log_skip", "skip_log"])
def test_log_skip_sets_the_log_skip_variable(site_handlers, name):
    [(handler, match)] = site_handlers(f":80\n{name} /health\n")
    assert handler == {"handler": "vars", "log_skip": True}
    assert match == [[{"path": ["/health"]}]]


def test_skip_log_warns_that_it_is_deprecated():
    _config, warnings = adapt_text(":80\nskip_log\n", "Rwsfile")
    assert any("'skip_log' directive is deprecated" in str(w) for w in warnings)


def test_quoted_values_stay_strings(site_handlers):
    [(handler, _)] = site_handlers(":80\nvars {\n\tn \"5\"\n\tb \"true\"\n\tm 5\n}\n")
    assert handler == {"handler": "vars", "n": "5", "b": "true", "m": 5}


@pytest.mark.parametrize("text, line, message", [
    (":80\nvars foo\n", 2, "wrong argument count or unexpected line ending after 'foo'"),
    (":80\nvars foo a b\n", 2, "wrong argument count or unexpected line ending after 'b'"),
    (":80\nvars {\n\tfoo\n}\n", 3, "wrong argument count or unexpected line ending after 'foo'"),
    (":80\nvars handler x\n", 2, "'handler' cannot be a variable name"),
    (":80\nroot\n", 2, "too few arguments; must have at least a root path"),
    (":80\nroot a b c\n", 2, "too many arguments; should only be a matcher and a path"),
    (":80\nroot srv www\n", 2, "expected a matcher before the root path, got 'srv'"),
    (":80\nroot * /srv {\n\tx\n}\n", 2, "root does not take a block"),
    (":80\nroot @nope /srv\n", 2, "unrecognized matcher name: @nope"),
    (":80\nlog_skip x\n", 2, "wrong argument count or unexpected line ending after 'x'"),
    (":80\nlog_skip {\n\tx\n}\n", 2, "log_skip directive does not accept blocks"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


def test_config_is_a_free_form_object():
    assert decode(VarsConfig, {"root": "/srv", "n": 1, "list": [1]}, "h") == {"root": "/srv", "n": 1, "list": [1]}


def test_config_rejects_a_non_object():
    with pytest.raises(ConfigError) as info:
        decode(VarsConfig, ["root"], "h")
    assert info.value.path == "h"
