"""The webmail flows' pure parts: token extraction, Roundcube's set_env and XHR replies, judging
replies, and whole flows driven by a scripted fake transport (no sockets).

The Roundcube snippets are cut from what Roundcube 1.6.5 (Debian 12, elastic skin) served on
the reference stack."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from loadtests.clients.webmail import (
    EmbeddedWebmail,
    HttpRequest,
    Judge,
    LoginFailed,
    Reply,
    Roundcube,
    ServerError,
    SessionExpired,
    UnexpectedReply,
    compose_form,
    embedded_inbox,
    hidden_input,
    is_session_error,
    judge_status,
    make_app,
    rc_env,
    rc_message_uids,
    rc_unread_count,
)

RC_LOGIN_PAGE = """<script>
rcmail.set_env({"task":"login","standard_windows":false,"locale":"en_US","rcversion":10605,\
"refresh_interval":60,"session_lifetime":600,"action":"","comm_path":"/?_task=login",\
"request_token":"tAXAsvoRDexznw8z3Ldwbgh8oR2m4hma"});
</script>
<form id="login-form" name="login-form" method="post" class="propform" action="/?_task=login">
<input type="hidden" name="_token" value="tAXAsvoRDexznw8z3Ldwbgh8oR2m4hma">
<input type="hidden" name="_task" value="login"><input type="hidden" name="_action" \
value="login"><input type="hidden" name="_timezone" id="rcmlogintz" value="_default_">\
<input name="_user" id="rcmloginuser" required size="40" class="form-control" value="" \
type="text">"""

RC_MAIL_PAGE = """<script>
rcmail.set_env({"task":"mail","refresh_interval":60,"session_lifetime":600,"action":"",\
"comm_path":"/?_task=mail","user_id":"rMNhmD1tI3EiXh6G","mailbox":"INBOX","pagesize":50,\
"request_token":"Psu0drrz2hWFx0uco9cxzZFkVco2GZnx"});
rcmail.gui_container("taskbar","taskmenu");
</script>"""

RC_LIST = json.dumps({
    "action": "list", "unlock": "loading1795405125014",
    "env": {"mailbox": "INBOX", "messagecount": 2},
    "exec": 'this.set_pagetitle("mailswarm Roundcube :: Inbox");\n'
            'this.set_unread_count("INBOX",2,true,"");\n'
            'this.add_message_row(2,{"subject":"hello 2","size":"513 B"},{"recent":1,'
            '"ctype":"","mbox":"INBOX"},false);\n'
            'this.add_message_row(1,{"subject":"hello 1","size":"513 B"},{"recent":1,'
            '"ctype":"","mbox":"INBOX"},false);\n'})

RC_REFRESH = ('{"action":"refresh","unlock":"loading1795405129201","env":{"recent_flags":[]},'
              '"exec":"this.set_unread_count(\\"INBOX\\",2,true,\\"\\");\\n"}')

RC_EXPIRED = ('{"action":"refresh","unlock":"loading1795405142116","exec":"this.display_message('
              '\\"Your session is invalid or expired.\\",\\"error\\",-1000);\\nthis.session_error('
              '\\"/?_task=login&_err=session\\");\\n"}')

RC_COMPOSE = """<script>rcmail.set_env({"task":"mail","action":"compose",\
"compose_id":"9883388606b03b54c69396","request_token":"Psu0drrz2hWFx0uco9cxzZFkVco2GZnx"});
</script>
<input type="hidden" name="_id" value="9883388606b03b54c69396">
<select name="_from" id="_from" tabindex="1" class="form-control" \
onchange="rcmail.change_identity(this)">
<option value="2" selected>user0001@example.test</option></select>"""

RC_SENT = ('<script>if (window.parent && parent.rcmail) parent.rcmail.sent_successfully('
           '"confirmation","Message sent successfully.",[],false);</script>')

EMBEDDED_LOGIN = """<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="bef0bd2b86ea70517777cd538b778e82">
<input name="user"> <input type="password" name="password">"""

EMBEDDED_INBOX = """<meta name="csrf-token" content="909e1e3583f489545eb8931a592a41af">
<ul id="messages">
<li class="unseen" data-uid="5"><a href="/message/5">test message 5</a></li>
<li class="seen" data-uid="4"><a href="/message/4">test message 4</a></li>
</ul>"""


# -- pure parsers ------------------------------------------------------------------------------
def test_hidden_inputs_of_both_login_forms():
    assert hidden_input(RC_LOGIN_PAGE, "_token") == "tAXAsvoRDexznw8z3Ldwbgh8oR2m4hma"
    assert hidden_input(RC_LOGIN_PAGE, "_timezone") == "_default_"
    assert hidden_input(EMBEDDED_LOGIN, "csrf_token") == "bef0bd2b86ea70517777cd538b778e82"
    assert hidden_input(EMBEDDED_LOGIN, "missing") is None
    assert hidden_input('<input value="a&amp;b" name="t">', "t") == "a&b"


def test_roundcube_env_and_request_token():
    env = rc_env(RC_MAIL_PAGE)
    assert env["request_token"] == "Psu0drrz2hWFx0uco9cxzZFkVco2GZnx"
    assert env["task"] == "mail" and env["refresh_interval"] == 60
    assert rc_env("<p>no script</p>") == {}
    assert rc_env("rcmail.set_env({broken);") == {}


def test_roundcube_list_and_refresh_replies():
    js = json.loads(RC_LIST)["exec"]
    assert rc_message_uids(js) == [2, 1]
    assert rc_unread_count(js) == 2
    refresh = json.loads(RC_REFRESH)["exec"]
    assert rc_message_uids(refresh) == [] and rc_unread_count(refresh) == 2
    assert not is_session_error(RC_LIST)
    assert is_session_error(RC_EXPIRED)


def test_roundcube_compose_page():
    assert compose_form(RC_COMPOSE) == ("9883388606b03b54c69396", "2")
    assert compose_form(RC_MAIL_PAGE) is None


def test_embedded_inbox():
    assert embedded_inbox(EMBEDDED_INBOX) == ("909e1e3583f489545eb8931a592a41af", [5, 4])
    assert embedded_inbox("<ul></ul>") == (None, [])


def test_judge_status():
    assert judge_status("X", Reply(200)) is None
    assert isinstance(judge_status("X", Reply(502, b"Bad Gateway")), ServerError)
    err = judge_status("X", Reply(404, b"nope"))
    assert isinstance(err, UnexpectedReply) and err.status == 404 and err.step == "X"
    assert judge_status("X", Reply(302), (302,)) is None


# -- flows on a scripted transport ----------------------------------------------------------------
class Script:
    """A fake transport: answers requests from a list, records them, applies the judge."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.sent: list[HttpRequest] = []

    def __call__(self, request: HttpRequest, judge: Judge) -> Reply:
        self.sent.append(request)
        reply = self.replies.pop(0)
        error = judge(reply)
        if error is not None:
            raise error
        return reply

    def names(self) -> list[str]:
        return [r.name for r in self.sent]


def form_of(request: HttpRequest) -> dict[str, str]:
    assert request.body is not None
    return {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}


def test_roundcube_session_flow():
    script = Script(
        Reply(200, RC_LOGIN_PAGE.encode()),
        Reply(302, b"", "/?_task=mail&_token=Psu0drrz2hWFx0uco9cxzZFkVco2GZnx"),
        Reply(200, RC_MAIL_PAGE.encode()),
        Reply(200, RC_LIST.encode()),
        Reply(200, RC_REFRESH.encode()),
        Reply(200, b"<html>message</html>"),
        Reply(302, b"", "/?_task=mail&_action=compose&_id=9883388606b03b54c69396"),
        Reply(200, RC_COMPOSE.encode()),
        Reply(200, RC_SENT.encode()),
        Reply(200, b"<html>login page</html>"),
    )
    app = make_app("roundcube", script)
    assert isinstance(app, Roundcube)
    app.login("user0001", "secret")
    login = form_of(script.sent[1])
    assert login["_token"] == "tAXAsvoRDexznw8z3Ldwbgh8oR2m4hma"
    assert (login["_user"], login["_pass"], login["_task"], login["_action"]) == (
        "user0001", "secret", "login", "login")
    app.open_inbox()
    assert app.token == "Psu0drrz2hWFx0uco9cxzZFkVco2GZnx"
    assert app.uids == [2, 1] and app.unread == 2
    list_request = script.sent[3]
    assert "_action=list" in list_request.path and "_remote=1" in list_request.path
    assert ("X-Roundcube-Request", app.token) in list_request.headers
    assert ("X-Requested-With", "XMLHttpRequest") in list_request.headers
    app.poll()
    refresh = script.sent[4]
    assert refresh.method == "POST" and refresh.path == "/?_task=mail&_action=refresh"
    assert form_of(refresh)["_uids"] == "2,1" and form_of(refresh)["_mbox"] == "INBOX"
    assert ("X-Roundcube-Request", app.token) in refresh.headers
    app.open_message(2)
    assert "_action=preview" in script.sent[5].path and "_uid=2" in script.sent[5].path
    app.send("user0002@example.test", "hi", "text")
    assert script.sent[7].path == "/?_task=mail&_action=compose&_id=9883388606b03b54c69396"
    sent = form_of(script.sent[8])
    assert (sent["_id"], sent["_from"], sent["_to"], sent["_token"], sent["_action"]) == (
        "9883388606b03b54c69396", "2", "user0002@example.test", app.token, "send")
    app.logout()
    assert script.sent[9].path == f"/?_task=logout&_token={app.token}"
    assert script.names() == ["LOGIN_PAGE", "LOGIN", "INBOX", "LIST", "POLL", "MESSAGE",
                              "COMPOSE", "COMPOSE", "SEND", "LOGOUT"]


def test_roundcube_expired_session_is_a_200_with_session_error():
    app = Roundcube(Script(Reply(200, RC_EXPIRED.encode())), token="t")
    with pytest.raises(SessionExpired) as err:
        app.poll()
    assert err.value.status == 200 and err.value.step == "POLL"


@pytest.mark.parametrize(("reply", "error"), [
    (Reply(401, b"<html>Login failed</html>"), LoginFailed),
    (Reply(200, b"<html>login form again</html>"), LoginFailed),
    (Reply(302, b"", "/?_task=login&_err=1"), LoginFailed),
    (Reply(500, b"Internal Server Error"), ServerError),
])
def test_roundcube_login_failures(reply, error):
    app = Roundcube(Script(Reply(200, RC_LOGIN_PAGE.encode()), reply))
    with pytest.raises(error):
        app.login("user0001", "wrong")


def test_roundcube_page_without_token_is_unexpected():
    app = Roundcube(Script(Reply(200, b"<html>maintenance</html>")))
    with pytest.raises(UnexpectedReply):
        app.login("user0001", "x")


def test_embedded_session_flow():
    script = Script(
        Reply(200, EMBEDDED_LOGIN.encode()),
        Reply(303, b"", "/inbox"),
        Reply(200, EMBEDDED_INBOX.encode()),
        Reply(200, b'{"unread": 3, "total": 6, "last_uid": 6, "new": [6]}'),
        Reply(200, b"<pre>message</pre>"),
        Reply(200, b'{"sent": true, "uid": 9}'),
        Reply(303, b"", "/login"),
    )
    app = make_app("embedded", script)
    assert isinstance(app, EmbeddedWebmail)
    app.login("user0001", "pw")
    assert form_of(script.sent[1]) == {"user": "user0001", "password": "pw",
                                       "csrf_token": "bef0bd2b86ea70517777cd538b778e82"}
    app.open_inbox()
    assert app.csrf == "909e1e3583f489545eb8931a592a41af" and app.uids == [5, 4]
    app.poll()
    assert script.sent[3].path == "/api/poll?since=5"
    assert app.uids == [5, 4, 6] and app.unread == 3 and app.last_uid == 6
    app.open_message(6)
    app.send("user0002@example.test", "s", "b")
    assert form_of(script.sent[5])["csrf_token"] == app.csrf
    app.logout()
    assert script.names() == ["LOGIN_PAGE", "LOGIN", "INBOX", "POLL", "MESSAGE", "SEND",
                              "LOGOUT"]


@pytest.mark.parametrize("reply", [
    Reply(401, b'{"error": "session expired"}'),
    Reply(303, b"", "/login?expired=1"),
])
def test_embedded_expired_session(reply):
    app = EmbeddedWebmail(Script(reply), csrf="x")
    with pytest.raises(SessionExpired):
        app.poll()


def test_embedded_login_refused_and_server_error():
    with pytest.raises(LoginFailed):
        EmbeddedWebmail(Script(Reply(200, EMBEDDED_LOGIN.encode()), Reply(401))).login("u", "p")
    with pytest.raises(ServerError):
        EmbeddedWebmail(Script(Reply(503))).open_message(1)
