"""The node's command-line tools: small scripts in ``bin/`` that call the in-process simulator.

Each script is run by ``sys.executable`` and POSTs its argv (and stdin when told to read values
from ``-``) to the control channel: an HTTP server on 127.0.0.1 shared by every node, which
knows a node by the per-node token in the exec environment. ``sudo`` runs its command directly.
"""

from __future__ import annotations

import hmac
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from sandbox.sites.httpd import HttpServer, Request, Response
from sandbox.sites.tool_result import ToolResult

TOKEN_ENV = "ACR_EDGE_SITE_TOKEN"
CONTROL_ENV = "ACR_EDGE_SITE_CONTROL"
SUDOERS_ENV = "ACR_EDGE_SITE_SUDOERS"  # the node's sudoers recipe file (enforced when present)
SIMULATED_TOOLS = ("helm", "kubectl", "systemctl", "k3s")

_CLIENT = """#!{python} -S
# Simulated `{tool}` of an acr-edge sandbox node: forwards to the node simulator.
import http.client, json, os, sys
argv = sys.argv[1:]
stdin = b""
if any(a in ("-", "--values=-", "--filename=-", "-f-") for a in argv):
    stdin = sys.stdin.buffer.read()
url = os.environ.get("{control_env}", "")
token = os.environ.get("{token_env}", "")
if not url or not token:
    sys.stderr.write("{tool}: cannot reach the node (no control channel in the environment)\\n")
    sys.exit(1)
host, _, port = url.rpartition("/")[2].partition(":")
body = json.dumps({{"tool": "{tool}", "argv": argv, "stdin": stdin.decode("latin-1"),
                    "cwd": os.getcwd()}})
try:
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("POST", "/tool", body, {{"X-Node-Token": token,
                                          "Content-Type": "application/json"}})
    reply = json.loads(conn.getresponse().read())
except (OSError, ValueError) as exc:
    sys.stderr.write("{tool}: node simulator unreachable: %s\\n" % type(exc).__name__)
    sys.exit(1)
sys.stdout.write(reply.get("stdout", ""))
sys.stderr.write(reply.get("stderr", ""))
sys.exit(int(reply.get("exit", 1)))
"""

_SUDO = r"""#!{python} -S
# Simulated sudo: the session is already root; drop sudo's own options and run the command.
import os, sys
args = sys.argv[1:]
while args and args[0].startswith("-"):
    opt = args.pop(0)
    if opt == "--":
        break
    if opt in ("-u", "-g", "-p", "-C", "-h") and args:
        args.pop(0)
if not args:
    sys.stderr.write("usage: sudo [-n] [-S] [-E] [-u user] command\n")
    sys.exit(1)
# A sudoers recipe on the node (the knob: a test writes the file) is enforced as sudo would:
# a command no Cmnd_Alias entry matches (program by name, each argument as a glob) is refused.
rules = os.environ.get("{sudoers_env}", "")
if rules and os.path.exists(rules):
    import fnmatch, re
    text = open(rules).read().replace("\\\n", "")
    ok = False
    for line in text.splitlines():
        if not line.startswith("Cmnd_Alias"):
            continue
        for entry in re.split(r"(?<!\\),", line.split("=", 1)[1]):
            words = [re.sub(r"\\(.)", r"\1", w) for w in re.split(r"(?<!\\)\s+", entry.strip())]
            if (os.path.basename(words[0]) == os.path.basename(args[0])
                    and len(words) == len(args)
                    and all(fnmatch.fnmatchcase(a, p) for a, p in zip(args[1:], words[1:]))):
                ok = True
    if not ok:
        with open(rules + ".refused", "a") as seen:  # for tests: what was refused
            seen.write(" ".join(args) + "\n")
        sys.stderr.write("Sorry, user edge is not allowed to execute '%s' as root.\n"
                         % " ".join(args))
        sys.exit(1)
try:
    os.execvp(args[0], args)
except FileNotFoundError:
    sys.stderr.write("sudo: %s: command not found\n" % args[0])
    sys.exit(1)
"""


def write_tools(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    scripts = {
        tool: _CLIENT.format(
            python=sys.executable, tool=tool, control_env=CONTROL_ENV, token_env=TOKEN_ENV
        )
        for tool in SIMULATED_TOOLS
    }
    # Plain replacement, not str.format: the script is full of regex braces and backslashes.
    scripts["sudo"] = _SUDO.replace("{python}", sys.executable).replace(
        "{sudoers_env}", SUDOERS_ENV
    )
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)


ToolHandler = Callable[[str, list[str], bytes, str], Awaitable[ToolResult]]


class ControlChannel:
    """One HTTP server for every node's tools; the token picks the node."""

    def __init__(self) -> None:
        self._nodes: dict[str, ToolHandler] = {}
        self.server = HttpServer(self._handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def register(self, token: str, handler: ToolHandler) -> None:
        self._nodes[token] = handler

    def unregister(self, token: str) -> None:
        self._nodes.pop(token, None)

    async def _handle(self, request: Request) -> Response:
        token = request.headers.get("x-node-token", "")
        handler = next((h for t, h in self._nodes.items() if hmac.compare_digest(t, token)), None)
        if request.method != "POST" or request.path != "/tool" or handler is None:
            return Response.json(403, {"stderr": "forbidden\n", "exit": 1})
        body = json.loads(request.body)
        result = await handler(
            str(body["tool"]),
            [str(a) for a in body["argv"]],
            str(body.get("stdin", "")).encode("latin-1"),
            str(body.get("cwd", "/")),
        )
        return Response.json(
            200, {"stdout": result.stdout, "stderr": result.stderr, "exit": result.exit}
        )
