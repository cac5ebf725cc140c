"""GitHub REST API v3 (docs.github.com/en/rest/issues): the repository, its issue list filtered by
labels and state, issue create/get/update and comments.  The search API answers from an index that
lags behind (here: it never sees new issues), which is why hpcos must not use it."""

from __future__ import annotations

from datetime import UTC, datetime

from support.tracker_doubles import Reply, Request, TrackerDouble, route

REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


class GitHubDouble(TrackerDouble):
    def __init__(self, token: str, full_name: str = "site/cluster"):
        super().__init__()
        self.token = token
        self.full_name = full_name
        self.issues: dict[int, dict] = {}
        self.comments: dict[int, list[str]] = {}

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") in (
            f"token {self.token}",
            f"Bearer {self.token}",
        )

    def _repo_url(self) -> str:
        return f"{self.url}/repos/{self.full_name}"

    def _known(self, request: Request) -> bool:
        return f"{request.params['owner']}/{request.params['repo']}" == self.full_name

    @route("GET", REPO)
    def get_repo(self, request: Request) -> Reply:
        if not self._known(request):
            return self.not_found(request)
        owner, name = self.full_name.split("/")
        return Reply(
            200,
            {
                "id": 1,
                "name": name,
                "full_name": self.full_name,
                "url": self._repo_url(),
                "html_url": f"https://github.example/{self.full_name}",
                "has_issues": True,
                "owner": {"login": owner, "id": 2, "type": "Organization"},
            },
        )

    @route("GET", REPO + r"/issues")
    def list_issues(self, request: Request) -> Reply:
        state = request.arg("state", "open")
        labels = [label for label in (request.arg("labels") or "").split(",") if label]
        found = [
            i
            for i in self.issues.values()
            if (state == "all" or i["state"] == state)
            and all(label in [lb["name"] for lb in i["labels"]] for label in labels)
        ]
        reverse = request.arg("direction", "desc") == "desc"
        return Reply(200, sorted(found, key=lambda i: i["number"], reverse=reverse))

    @route("POST", REPO + r"/issues")
    def create_issue(self, request: Request) -> Reply:
        data = request.json
        if not data.get("title"):
            return Reply(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"field": "title", "code": "missing_field"}],
                },
            )
        number = len(self.issues) + 1
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.issues[number] = {
            "id": 1000 + number,
            "number": number,
            "title": data["title"],
            "body": data.get("body"),
            "state": "open",
            "state_reason": None,
            "locked": False,
            "comments": 0,
            "labels": [
                {"id": hash(name) & 0xFFFF, "name": name, "color": "ededed"}
                for name in data.get("labels", [])
            ],
            "url": f"{self._repo_url()}/issues/{number}",
            "html_url": f"https://github.example/{self.full_name}/issues/{number}",
            "comments_url": f"{self._repo_url()}/issues/{number}/comments",
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
            "user": {"login": "hpcos-bot", "id": 3, "type": "Bot"},
        }
        self.comments[number] = []
        return Reply(201, self.issues[number], {"Location": self.issues[number]["url"]})

    def _issue(self, request: Request) -> dict | None:
        return self.issues.get(int(request.params["number"])) if self._known(request) else None

    @route("GET", REPO + r"/issues/(?P<number>\d+)")
    def get_issue(self, request: Request) -> Reply:
        issue = self._issue(request)
        return Reply(200, issue) if issue else self.not_found(request)

    @route("PATCH", REPO + r"/issues/(?P<number>\d+)")
    def update_issue(self, request: Request) -> Reply:
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        data = request.json
        if "state" in data:
            issue["state"] = data["state"]
            issue["state_reason"] = data.get("state_reason") or (
                "reopened" if data["state"] == "open" else "completed"
            )
            issue["closed_at"] = (
                None
                if data["state"] == "open"
                else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        return Reply(200, issue)

    @route("POST", REPO + r"/issues/(?P<number>\d+)/comments")
    def create_comment(self, request: Request) -> Reply:
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        self.comments[issue["number"]].append(request.json["body"])
        issue["comments"] += 1
        return Reply(
            201,
            {
                "id": 5000 + issue["comments"],
                "body": request.json["body"],
                "url": f"{self._repo_url()}/issues/comments/{5000 + issue['comments']}",
            },
        )

    @route("GET", REPO + r"/issues/(?P<number>\d+)/comments")
    def list_comments(self, request: Request) -> Reply:
        """GET /repos/{owner}/{repo}/issues/{number}/comments: the comments, oldest first (one page)."""
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        return Reply(
            200,
            [
                {
                    "id": 5001 + i,
                    "body": body,
                    "url": f"{self._repo_url()}/issues/comments/{5001 + i}",
                }
                for i, body in enumerate(self.comments[issue["number"]])
            ],
        )

    @route("GET", r"/search/issues")
    def search(self, request: Request) -> Reply:
        return Reply(200, {"total_count": 0, "incomplete_results": False, "items": []})

    def ticket_texts(self, ticket_id: str) -> list[str]:
        """Description, then comments, of the issue hpcos calls ``ticket_id``."""
        return [self.issues[int(ticket_id)]["body"], *self.comments[int(ticket_id)]]

    def states(self) -> list[str]:
        return [i["state"] for i in self.issues.values()]
