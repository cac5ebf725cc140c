"""Bugzilla 5 REST API (bugzilla.readthedocs.io/en/latest/api/core/v1/): /rest/version, bug search
GET /rest/bug (``whiteboard`` matches as a substring, ``include_fields``), bug create POST /rest/bug
(product, component, version, summary required), bug get, and bug update PUT /rest/bug/{id} with
``comment``, ``status`` and ``resolution``.  Auth: the ``Bugzilla_api_key`` query parameter (5.0) or
the X-BUGZILLA-API-KEY header (5.1).  Errors are HTTP 4xx with {"error": true, "code", "message"}."""

from __future__ import annotations

from support.tracker_doubles import Reply, Request, TrackerDouble, route

OPEN = ("UNCONFIRMED", "CONFIRMED", "IN_PROGRESS")
CLOSED = ("RESOLVED", "VERIFIED")


class BugzillaDouble(TrackerDouble):
    def __init__(self, api_key: str, product: str = "HPC cluster", component: str = "nightly"):
        super().__init__()
        self.api_key = api_key
        self.product = product
        self.component = component
        self.bugs: dict[int, dict] = {}
        self.comments: dict[int, list[str]] = {}

    def authorised(self, request: Request) -> bool:
        if request.path == "/rest/version":
            return True
        return self.api_key in (
            request.arg("Bugzilla_api_key"),
            request.headers.get("x-bugzilla-api-key"),
        )

    @staticmethod
    def error(status: int, code: int, message: str) -> Reply:
        return Reply(
            status,
            {
                "error": True,
                "code": code,
                "message": message,
                "documentation": "https://bugzilla.readthedocs.org/en/5.2/api/",
            },
        )

    def unauthorised(self) -> Reply:
        return self.error(401, 410, "You must log in before using this part of Bugzilla.")

    def not_found(self, request: Request) -> Reply:
        return self.error(
            404, 32614, f"A REST API resource was not found for '{request.method} {request.path}'."
        )

    @route("GET", r"/rest/version")
    def version(self, request: Request) -> Reply:
        return Reply(200, {"version": "5.2"})

    def _view(self, bug: dict, include: list[str]) -> dict:
        return {k: v for k, v in bug.items() if not include or k in include}

    @route("GET", r"/rest/bug")
    def search(self, request: Request) -> Reply:
        include = [f for value in request.query.get("include_fields", []) for f in value.split(",")]
        found = [
            b
            for b in self.bugs.values()
            if all(
                request.arg(f) is None or request.arg(f) == b[f] for f in ("product", "component")
            )
            and (request.arg("whiteboard") is None or request.arg("whiteboard") in b["whiteboard"])
        ]
        return Reply(200, {"bugs": [self._view(b, include) for b in found], "faults": []})

    @route("GET", r"/rest/bug/(?P<id>\d+)")
    def get(self, request: Request) -> Reply:
        bug = self.bugs.get(int(request.params["id"]))
        if not bug:
            return self.error(404, 101, f"Bug #{request.params['id']} does not exist.")
        include = [f for value in request.query.get("include_fields", []) for f in value.split(",")]
        return Reply(200, {"bugs": [self._view(bug, include)], "faults": []})

    @route("GET", r"/rest/bug/(?P<id>\d+)/comment")
    def get_comments(self, request: Request) -> Reply:
        """GET /rest/bug/(id)/comment: {"bugs": {"<id>": {"comments": [{"id", "count", "text"}, ...]}}}."""
        bug = self.bugs.get(int(request.params["id"]))
        if not bug:
            return self.error(404, 101, f"Bug #{request.params['id']} does not exist.")
        comments = [
            {
                "id": 100 * bug["id"] + n,
                "bug_id": bug["id"],
                "count": n,
                "text": text,
                "is_private": False,
            }
            for n, text in enumerate(self.comments[bug["id"]])
        ]
        return Reply(200, {"bugs": {str(bug["id"]): {"comments": comments}}, "comments": {}})

    @route("POST", r"/rest/bug")
    def create(self, request: Request) -> Reply:
        data = request.json
        for field in ("product", "component", "summary", "version"):
            if not data.get(field):
                return self.error(400, 50, f"You must select/enter a {field}.")
        if data["product"] != self.product or data["component"] != self.component:
            return self.error(
                400,
                51,
                f"There is no component named '{data['component']}' in the "
                f"'{data['product']}' product.",
            )
        bug_id = len(self.bugs) + 1
        self.bugs[bug_id] = {
            "id": bug_id,
            "product": data["product"],
            "component": data["component"],
            "summary": data["summary"],
            "version": data["version"],
            "status": "CONFIRMED",
            "resolution": "",
            "is_open": True,
            "whiteboard": data.get("whiteboard", ""),
            "creation_time": "2026-11-26T02:00:00Z",
        }
        self.comments[bug_id] = [data.get("description", "")]
        return Reply(200, {"id": bug_id})

    @route("PUT", r"/rest/bug/(?P<id>\d+)")
    def update(self, request: Request) -> Reply:
        bug = self.bugs.get(int(request.params["id"]))
        if not bug:
            return self.error(404, 101, f"Bug #{request.params['id']} does not exist.")
        data = request.json
        changes = {}
        status = data.get("status")
        if status:
            if status not in OPEN + CLOSED:
                return self.error(400, 60, f"There is no status named '{status}'.")
            if status in CLOSED and not data.get("resolution"):
                return self.error(
                    400, 61, "A valid resolution is required to mark bugs as RESOLVED."
                )
            changes["status"] = {"removed": bug["status"], "added": status}
            bug["status"] = status
            bug["resolution"] = data.get("resolution", "") if status in CLOSED else ""
            bug["is_open"] = status in OPEN
        # "body", or "comment" for compatibility with Bug.add_comment (both documented).
        comment = data.get("comment") or {}
        text = comment.get("body") or comment.get("comment")
        if text:
            self.comments[bug["id"]].append(text)
        return Reply(200, {"bugs": [{"id": bug["id"], "alias": [], "changes": changes}]})

    def ticket_texts(self, ticket_id: str) -> list[str]:
        return self.comments[int(ticket_id)]  # Bugzilla's description is comment 0

    def states(self) -> list[str]:
        return [b["status"] for b in self.bugs.values()]
