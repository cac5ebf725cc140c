"""An HTTP double of the Jenkins endpoints python-jenkins uses, on 127.0.0.1.

Jenkins cannot be installed on the test machines, so hpcos' Jenkins side is tested
against this server.  It follows Jenkins' documented remote-API behaviour rather than
hpcos' expectations:

- every response carries the ``X-Jenkins`` header; ``/crumbIssuer/api/json`` issues a CSRF crumb per
  user, and a POST without a valid crumb is refused with 403 "No valid crumb was included in the
  request";
- HTTP basic auth with API tokens: unknown user or wrong token -> 401; a user without a permission
  (read-only users here) -> 403; anonymous access when no users are configured;
- ``/api/json`` with ``tree=`` queries (objects always carry ``_class``; nested folders; a list not
  given sub-fields comes back as objects with only ``_class``); ``job/NAME/api/json``;
- ``createItem?name=`` with a config.xml body (400 if the item exists, 404 if the parent folder is
  missing), or in form mode with ``mode=com.cloudbees.hudson.plugins.folder.Folder``;
- ``job/NAME/config.xml`` GET and POST; ``doDelete`` answers 302 to the parent;
- ``build`` / ``buildWithParameters`` answer 201 with a ``Location`` naming the queue item;
  ``queue/item/N/api/json`` and ``job/NAME/N/api/json`` describe the (instantly finished) build;
- when it saves a config it rewrites it the way Jenkins does: its own XML declaration
  (``<?xml version='1.1' encoding='UTF-8'?>``), its own indentation, ``plugin="name@version"`` on
  plugin-provided elements, and no legacy ``class="vector"`` on ``<triggers>``.

A per-request delay stands in for network and server latency, and a request log lets tests count
writes.  ``python -m support.jenkins_double`` (from tests/) runs it as a process (see ``main``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from support.http_double import HttpDouble

JENKINS_VERSION = "2.440.3"
FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
CRUMB_FIELD = "Jenkins-Crumb"
ITEM_CLASSES = {
    "project": "hudson.model.FreeStyleProject",
    "flow-definition": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
    "matrix-project": "hudson.matrix.MatrixProject",
    FOLDER_CLASS: FOLDER_CLASS,
}
# Plugins that provide config elements JJB writes without a plugin attribute, and their versions.
PLUGIN_OF_ELEMENT = {
    "hudson.plugins.timestamper.TimestamperBuildWrapper": "timestamper",
    "hudson.plugins.build__timeout.BuildTimeoutWrapper": "build-timeout",
}
PLUGIN_VERSIONS = {
    "timestamper": "1.26",
    "build-timeout": "1.32",
    "junit": "1265.v65b_14fa_f12f0",
    "scripttrigger": "1.2",
    "cloudbees-folder": "6.901.vb_4c7a_da_75da_3",
}
EMPTY_FOLDER = (
    f'<{FOLDER_CLASS} plugin="cloudbees-folder"><description/><properties/>'
    f"<folderViews/><healthMetrics/></{FOLDER_CLASS}>"
)


def jenkins_saved(config: str) -> str:
    """The config as Jenkins writes it back to disk after a POST (raises ET.ParseError if not XML)."""
    root = ET.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", config, count=1))
    for elem in root.iter():
        plugin = elem.get("plugin")
        if plugin is None:
            plugin = PLUGIN_OF_ELEMENT.get(elem.tag)
        if plugin is not None and "@" not in plugin:
            elem.set("plugin", f"{plugin}@{PLUGIN_VERSIONS.get(plugin, '1.0')}")
        if elem.tag == "triggers" and elem.get("class") == "vector":
            del elem.attrib["class"]
    ET.indent(root, "  ")
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode")


@dataclass
class Item:
    name: str
    config: str
    children: dict[str, Item] = field(default_factory=dict)
    builds: list[dict] = field(default_factory=list)
    kind: str = ""  # Jenkins' _class, from the config's root element
    description: str | None = None

    def __post_init__(self):
        self.save(self.config)

    def save(self, config: str) -> None:
        root = ET.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", config, count=1))
        self.config = config
        self.kind = ITEM_CLASSES.get(root.tag, root.tag)
        found = root.find("description")
        self.description = None if found is None else (found.text or "")

    @property
    def is_folder(self) -> bool:
        return self.kind == FOLDER_CLASS


class HttpError(Exception):
    def __init__(self, status: int, message: str = "", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def parse_tree(spec: str) -> dict:
    """``jobs[name,jobs[name]],url`` -> {"jobs": {"name": None, "jobs": {"name": None}}, "url": None}."""
    tree: dict = {}
    stack = [tree]
    name = ""
    for char in spec + ",":
        if char == "[":
            child: dict = {}
            stack[-1][name.strip()] = child
            stack.append(child)
            name = ""
        elif char in ",]":
            if name.strip():
                stack[-1][name.strip()] = None
            name = ""
            if char == "]":
                stack.pop()
        else:
            name += char
    return tree


def apply_tree(data, tree: dict | None):
    """Jenkins' tree filter: keep the requested fields; objects keep ``_class``."""
    if isinstance(data, list):
        return [apply_tree(item, tree) for item in data]
    if not isinstance(data, dict):
        return data
    out = {"_class": data["_class"]} if "_class" in data else {}
    for key, sub in (tree or {}).items():
        if key not in data:
            continue
        value = data[key]
        if sub is None and isinstance(value, list | dict):
            value = apply_tree(value, {})
        elif sub is not None:
            value = apply_tree(value, sub)
        out[key] = value
    return out


class JenkinsDouble(HttpDouble):
    """The server's state and behaviour; ``start()`` serves it on a free port of 127.0.0.1."""

    server_header = {"X-Jenkins": JENKINS_VERSION}

    def __init__(
        self,
        users: dict[str, str] | None = None,
        read_only: set[str] | None = None,
        delay: float = 0.0,
        require_crumb: bool = True,
    ):
        super().__init__()
        self.users = users or {}
        self.read_only = read_only or set()
        self.delay = delay
        self.require_crumb = require_crumb
        self.root = Item("", EMPTY_FOLDER)
        self.queue: dict[int, dict] = {}
        self.log: list[tuple[str, str]] = []
        # Failures a test injects: (method, path regex) -> status, consumed once matched.
        self.fail_next: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    # -- serving -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return super().url + "/" if self._server else ""

    def respond(self, method: str, path: str, headers, body: bytes):
        try:
            return self.handle(method, path, headers, body)
        except HttpError as exc:
            out = {"Content-Type": "text/html;charset=utf-8", **exc.headers}
            if exc.status == 401:
                out["WWW-Authenticate"] = 'Basic realm="Jenkins"'
            page = f"<html><body><h2>HTTP ERROR {exc.status}</h2><p>{exc.message}</p></body></html>"
            return exc.status, out, page.encode()

    # -- test helpers ----------------------------------------------------------------------------
    def writes(self) -> list[tuple[str, str]]:
        return [entry for entry in self.log if entry[0] == "POST"]

    def item(self, full_name: str) -> Item | None:
        node = self.root
        for part in full_name.split("/"):
            node = node.children.get(part)
            if node is None:
                return None
        return node

    def put(self, full_name: str, config: str) -> Item:
        """Create or replace an item directly, as if saved through the web UI."""
        *parents, name = full_name.split("/")
        folder = self.item("/".join(parents)) if parents else self.root
        if folder is None:
            raise KeyError(f"no folder {'/'.join(parents)!r}")
        existing = folder.children.get(name)
        item = Item(name, jenkins_saved(config), children=existing.children if existing else {})
        folder.children[name] = item
        return item

    def all_names(self) -> list[str]:
        names = []
        pending = [("", self.root)]
        while pending:
            prefix, node = pending.pop()
            for name, child in node.children.items():
                names.append(prefix + name)
                pending.append((prefix + name + "/", child))
        return sorted(names)

    def crumb_for(self, user: str) -> str:
        return hashlib.sha256(f"double-crumb:{user}".encode()).hexdigest()[:32]

    # -- request handling ------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers, body: bytes) -> tuple[int, dict, bytes]:
        if self.delay:
            time.sleep(self.delay)
        parts = urlsplit(raw_path)
        with self._lock:
            self.log.append((method, parts.path))
            for i, (fail_method, pattern, status) in enumerate(self.fail_next):
                if fail_method == method and re.search(pattern, parts.path):
                    del self.fail_next[i]
                    raise HttpError(status, f"injected failure {status}")
        user = self._authenticate(headers)
        if method == "POST":
            if user is not None and user in self.read_only:
                raise HttpError(403, f"{user} is missing the Job/Configure permission")
            if self.require_crumb and headers.get(CRUMB_FIELD) != self.crumb_for(
                user or "anonymous"
            ):
                raise HttpError(403, "No valid crumb was included in the request")
        query = parse_qs(parts.query)
        segments = (
            [unquote(s) for s in parts.path.strip("/").split("/")] if parts.path.strip("/") else []
        )
        with self._lock:
            return self._route(method, segments, query, headers, body, user)

    def _authenticate(self, headers) -> str | None:
        if not self.users:
            return None
        auth = headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            raise HttpError(
                403, "Authentication required: anonymous is missing the Overall/Read permission"
            )
        try:
            user, _, token = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(401, "Invalid authorization header") from None
        if self.users.get(user) != token:
            raise HttpError(401, "Invalid password/token for user")
        return user

    def _route(self, method, segments, query, headers, body, user):
        # Walk job/NAME/job/NAME... from the root.
        node, path = self.root, []
        while len(segments) >= 2 and segments[0] == "job":
            child = node.children.get(segments[1])
            if child is None:
                raise HttpError(404, "Not Found")
            node, path, segments = child, path + [segments[1]], segments[2:]
        action = "/".join(segments)
        at_root = node is self.root

        if at_root and action == "crumbIssuer/api/json" and method == "GET":
            return self._json(
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": self.crumb_for(user or "anonymous"),
                    "crumbRequestField": CRUMB_FIELD,
                }
            )
        if at_root and action == "me/api/json":
            return self._json(
                {
                    "_class": "hudson.model.User",
                    "id": user or "anonymous",
                    "fullName": user or "anonymous",
                }
            )
        if at_root and action == "pluginManager/api/json":
            return self._json(
                {
                    "plugins": [
                        {
                            "shortName": n,
                            "longName": n,
                            "version": v,
                            "active": True,
                            "enabled": True,
                        }
                        for n, v in PLUGIN_VERSIONS.items()
                    ]
                }
            )
        queue_match = re.fullmatch(r"queue/item/(\d+)/api/json", action)
        if at_root and queue_match:
            entry = self.queue.get(int(queue_match.group(1)))
            if entry is None:
                raise HttpError(404, "Not Found")
            return self._json(entry)
        if action == "api/json" and method == "GET":
            data = self._describe(node, path, deep=True)
            if "tree" in query:
                data = apply_tree(data, parse_tree(query["tree"][0]))
            return self._json(data)
        if action in ("", "/") and method == "GET":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Jenkins</body></html>"
        if action == "createItem" and method == "POST":
            if not at_root and not node.is_folder:
                raise HttpError(404, "Not Found")
            return self._create(node, query, headers, body)
        if at_root:
            raise HttpError(404, "Not Found")
        if action == "config.xml" and method == "GET":
            return (
                200,
                {"Content-Type": "application/xml;charset=utf-8"},
                node.config.encode("utf-8"),
            )
        if action == "config.xml" and method == "POST":
            try:
                node.save(jenkins_saved(body.decode("utf-8")))
            except (ET.ParseError, UnicodeDecodeError) as exc:
                raise HttpError(500, f"Failed to parse config.xml: {exc}") from None
            return 200, {}, b""
        if action == "doDelete" and method == "POST":
            parent = self.item("/".join(path[:-1])) if len(path) > 1 else self.root
            del parent.children[path[-1]]
            parent_url = self.url + "".join(f"job/{quote(p)}/" for p in path[:-1])
            return 302, {"Location": parent_url}, b""
        if action in ("build", "buildWithParameters") and method == "POST":
            return self._build(node, path, query, body)
        build_match = re.fullmatch(r"(\d+)/api/json", action)
        if build_match and method == "GET":
            number = int(build_match.group(1))
            if not 0 < number <= len(node.builds):
                raise HttpError(404, "Not Found")
            return self._json(node.builds[number - 1])
        raise HttpError(404, "Not Found")

    def _item_url(self, path: list[str]) -> str:
        return self.url + "".join(f"job/{quote(p)}/" for p in path)

    def _describe(self, node: Item, path: list[str], deep: bool) -> dict:
        if node is self.root:
            data = {
                "_class": "hudson.model.Hudson",
                "mode": "NORMAL",
                "nodeDescription": "the Jenkins double",
                "url": self.url,
                "useCrumbs": self.require_crumb,
            }
        else:
            data = {
                "_class": node.kind,
                "name": node.name,
                "fullName": "/".join(path),
                "url": self._item_url(path),
                "description": node.description,
            }
            if not node.is_folder:
                data.update(
                    {
                        "color": "blue" if node.builds else "notbuilt",
                        "buildable": True,
                        "nextBuildNumber": len(node.builds) + 1,
                        "builds": [
                            {
                                "_class": "hudson.model.FreeStyleBuild",
                                "number": b["number"],
                                "url": b["url"],
                            }
                            for b in reversed(node.builds)
                        ],
                    }
                )
        if node is self.root or node.is_folder:
            data["jobs"] = [
                self._describe(child, path + [name], deep) for name, child in node.children.items()
            ]
        return data

    def _create(self, folder: Item, query, headers, body):
        name = (query.get("name") or [""])[0]
        content_type = headers.get("Content-Type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8"))
            name = name or (form.get("name") or [""])[0]
            if (form.get("mode") or [""])[0] != FOLDER_CLASS:
                raise HttpError(400, "No mode given or mode not supported")
            config = EMPTY_FOLDER
        else:
            config = body.decode("utf-8")
        if not name or "/" in name:
            raise HttpError(400, "No name given or name not valid")
        if name in folder.children:
            raise HttpError(400, f"A job already exists with the name '{name}'")
        try:
            folder.children[name] = Item(name, jenkins_saved(config))
        except ET.ParseError as exc:
            raise HttpError(500, f"Failed to parse config.xml: {exc}") from None
        return 200, {}, b""

    def _build(self, node: Item, path: list[str], query, body):
        if node.is_folder:
            raise HttpError(405, "Method Not Allowed")
        params = {k: v[0] for k, v in query.items() if k != "token"}
        if body:
            params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()})
        number = len(node.builds) + 1
        build_url = f"{self._item_url(path)}{number}/"
        node.builds.append(
            {
                "_class": "hudson.model.FreeStyleBuild",
                "number": number,
                "url": build_url,
                "result": "SUCCESS",
                "building": False,
                "fullDisplayName": f"{'/'.join(path)} #{number}",
                "actions": [
                    {
                        "_class": "hudson.model.ParametersAction",
                        "parameters": [{"name": k, "value": v} for k, v in params.items()],
                    }
                ],
            }
        )
        queue_id = len(self.queue) + 1
        self.queue[queue_id] = {
            "_class": "hudson.model.Queue$LeftItem",
            "id": queue_id,
            "blocked": False,
            "buildable": False,
            "cancelled": False,
            "why": None,
            "task": {
                "_class": ITEM_CLASSES["project"],
                "name": node.name,
                "url": self._item_url(path),
            },
            "executable": {
                "_class": "hudson.model.FreeStyleBuild",
                "number": number,
                "url": build_url,
            },
        }
        return 201, {"Location": f"{self.url}queue/item/{queue_id}/"}, b""

    @staticmethod
    def _json(data) -> tuple[int, dict, bytes]:
        return (
            200,
            {"Content-Type": "application/json;charset=utf-8"},
            json.dumps(data).encode("utf-8"),
        )


def seed_from_render(double: JenkinsDouble, rendered_dir: Path) -> int:
    """Load DIR/<folder>/<job>/config.xml (the layout of `hpcos jobs render`), folders first."""
    configs = sorted(rendered_dir.rglob("config.xml"), key=lambda p: (len(p.parts), p))
    for path in configs:
        double.put(path.parent.relative_to(rendered_dir).as_posix(), path.read_text("utf-8"))
    return len(configs)


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes; print the URL first and, at the end, the request log as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--user", help="require basic auth as this user (token from --token)")
    parser.add_argument("--token")
    parser.add_argument(
        "--seed", type=Path, help="directory written by `hpcos jobs render` to preload"
    )
    args = parser.parse_args(argv)
    double = JenkinsDouble(users={args.user: args.token} if args.user else None)
    if args.seed:
        seed_from_render(double, args.seed)
    double.delay = args.delay
    double.start()
    print(double.url, flush=True)
    sys.stdin.read()
    double.stop()
    print(json.dumps(double.log), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
