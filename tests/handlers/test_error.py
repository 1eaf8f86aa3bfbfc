"""`error`: the error handler."""

from __future__ import annotations

import pytest

from rws.config.decode import decode
from rws.errors import ConfigError
from rws.handlers.error import ErrorConfig


@pytest.mark.parametrize("text", [
    ":80\nerror 404\n",
    ":80\nerror boom\n",
    ":80\nerror /x \"nope\" 403\n",
    ":80\nerror /x \"nope\" {http.vars.status}\n",
    ":80\nerror 500 {\n\tmessage oops\n}\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_message_and_status(site_handlers):
    [(handler, match)] = site_handlers(":80\nerror /gone \"gone for good\" 410\n")
    assert handler == {"handler": "error", "error": "gone for good", "status_code": 410}
    assert match == [[{"path": ["/gone"]}]]


@pytest.mark.parametrize("text, line, message", [
    (":80\nerror\n", 2, "wrong argument count or unexpected line ending after 'error'"),
    (":80\nerror a b c\n", 2, "wrong argument count"),
    (":80\nerror a 2\n", 2, "bad status code '2': expected a number from 100 to 999"),
    (":80\nerror a nope\n", 2, "bad status code 'nope'"),
    (":80\nerror 500 {\n\tmesage x\n}\n", 3, "unrecognized subdirective 'mesage' (did you mean 'message'?)"),
    (":80\nerror x {\n\tmessage y\n}\n", 3, "message already specified"),
    (":80\nerror 500 {\n\tmessage a b\n}\n", 3, "wrong argument count"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


def test_config_rejects_a_bad_status():
    with pytest.raises(ConfigError) as info:
        decode(ErrorConfig, {"error": "x", "status_code": "x1"}, "h")
    assert info.value.path == "h.status_code"
