"""GitLab REST API v4 (docs.gitlab.com/ee/api/issues.html, notes.html): a project's issue list
filtered by ``labels`` (comma-separated, all must match) and ``state`` (default: all states), issue
create/get/edit with ``state_event`` close|reopen, and issue notes.  Auth: the PRIVATE-TOKEN header."""

from __future__ import annotations

from datetime import UTC, datetime

from support.tracker_doubles import Reply, Request, TrackerDouble, route

PROJECT = r"/api/v4/projects/(?P<project>[^/]+)"


class GitLabDouble(TrackerDouble):
    def __init__(self, token: str, project: str = "hpc/cluster"):
        super().__init__()
        self.token = token
        self.project = project
        self.issues: dict[int, dict] = {}
        self.notes: dict[int, list[str]] = {}

    def authorised(self, request: Request) -> bool:
        return request.headers.get("private-token") == self.token

    def unauthorised(self) -> Reply:
        return Reply(401, {"message": "401 Unauthorized"})

    def not_found(self, request: Request) -> Reply:
        return Reply(404, {"message": "404 Not found"})

    def _known(self, request: Request) -> bool:
        return request.params["project"] in (self.project, "17")

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    @route("GET", PROJECT + r"/issues")
    def list_issues(self, request: Request) -> Reply:
        if not self._known(request):
            return self.not_found(request)
        state = request.arg("state", "all")
        labels = [label for label in (request.arg("labels") or "").split(",") if label]
        found = [
            i
            for i in self.issues.values()
            if state in ("all", i["state"]) and all(label in i["labels"] for label in labels)
        ]
        found.sort(
            key=lambda i: i["created_at"] + f"{i['iid']:08d}",
            reverse=request.arg("sort", "desc") == "desc",
        )
        return Reply(200, found, {"X-Total": str(len(found)), "X-Page": "1", "X-Total-Pages": "1"})

    @route("POST", PROJECT + r"/issues")
    def create_issue(self, request: Request) -> Reply:
        if not self._known(request):
            return self.not_found(request)
        data = request.json
        if not data.get("title"):
            return Reply(400, {"error": "title is missing"})
        labels = data.get("labels") or []
        labels = labels.split(",") if isinstance(labels, str) else labels
        iid = len(self.issues) + 1
        now = self._now()
        self.issues[iid] = {
            "id": 900 + iid,
            "iid": iid,
            "project_id": 17,
            "title": data["title"],
            "description": data.get("description"),
            "state": "opened",
            "labels": labels,
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
            "author": {"id": 5, "username": "hpcos-bot"},
            "web_url": f"https://gitlab.example/{self.project}/-/issues/{iid}",
            "user_notes_count": 0,
        }
        self.notes[iid] = []
        return Reply(201, self.issues[iid])

    def _issue(self, request: Request) -> dict | None:
        return self.issues.get(int(request.params["iid"])) if self._known(request) else None

    @route("GET", PROJECT + r"/issues/(?P<iid>\d+)")
    def get_issue(self, request: Request) -> Reply:
        issue = self._issue(request)
        return Reply(200, issue) if issue else self.not_found(request)

    @route("PUT", PROJECT + r"/issues/(?P<iid>\d+)")
    def edit_issue(self, request: Request) -> Reply:
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        event = request.json.get("state_event")
        if event not in (None, "close", "reopen"):
            return Reply(400, {"error": "state_event does not have a valid value"})
        if event:
            issue["state"] = "closed" if event == "close" else "opened"
            issue["closed_at"] = self._now() if event == "close" else None
        issue["updated_at"] = self._now()
        return Reply(200, issue)

    @route("GET", PROJECT + r"/issues/(?P<iid>\d+)/notes")
    def list_notes(self, request: Request) -> Reply:
        """GET /projects/:id/issues/:issue_iid/notes: the issue's notes (one page, no Link header)."""
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        return Reply(
            200,
            [
                {
                    "id": 7001 + i,
                    "body": body,
                    "noteable_type": "Issue",
                    "noteable_iid": issue["iid"],
                    "system": False,
                }
                for i, body in enumerate(self.notes[issue["iid"]])
            ],
        )

    @route("POST", PROJECT + r"/issues/(?P<iid>\d+)/notes")
    def create_note(self, request: Request) -> Reply:
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        self.notes[issue["iid"]].append(request.json["body"])
        issue["user_notes_count"] += 1
        return Reply(
            201,
            {
                "id": 7000 + len(self.notes[issue["iid"]]),
                "body": request.json["body"],
                "noteable_type": "Issue",
                "noteable_iid": issue["iid"],
                "system": False,
            },
        )

    def ticket_texts(self, ticket_id: str) -> list[str]:
        return [self.issues[int(ticket_id)]["description"], *self.notes[int(ticket_id)]]

    def states(self) -> list[str]:
        return [i["state"] for i in self.issues.values()]
