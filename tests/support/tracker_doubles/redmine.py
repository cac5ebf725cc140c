"""Redmine REST API (redmine.org/projects/redmine/wiki/Rest_Issues): GET /issues.json with
``project_id``, ``status_id`` (default open only, ``*`` all), ``cf_<id>`` custom field filters,
``sort``, ``offset``/``limit`` and ``total_count``; POST /issues.json (201); PUT /issues/{id}.json with
``notes`` and ``status_id`` (204 No Content); POST /projects/{id}/issues.json as well;
GET /issue_statuses.json.  Auth: X-Redmine-API-Key."""

from __future__ import annotations

from support.tracker_doubles import Reply, Request, TrackerDouble, route

STATUSES = [
    {"id": 1, "name": "New", "is_closed": False},
    {"id": 2, "name": "In Progress", "is_closed": False},
    {"id": 5, "name": "Closed", "is_closed": True},
    {"id": 6, "name": "Rejected", "is_closed": True},
]


class RedmineDouble(TrackerDouble):
    def __init__(self, api_key: str, project: str = "hpc", field_id: int = 7):
        super().__init__()
        self.api_key = api_key
        self.project = project
        self.field_id = field_id
        self.issues: dict[int, dict] = {}
        self.journals: dict[int, list[str]] = {}

    def authorised(self, request: Request) -> bool:
        return request.headers.get("x-redmine-api-key") == self.api_key

    def unauthorised(self) -> Reply:
        return Reply(401, None)

    def not_found(self, request: Request) -> Reply:
        return Reply(404, None)

    @route("GET", r"/issue_statuses\.json")
    def statuses(self, request: Request) -> Reply:
        return Reply(200, {"issue_statuses": STATUSES})

    def _status(self, status_id: int) -> dict:
        return next(s for s in STATUSES if s["id"] == status_id)

    def _fingerprint(self, issue: dict) -> str:
        return next((f["value"] for f in issue["custom_fields"] if f["id"] == self.field_id), "")

    @route("GET", r"/issues\.json")
    def list_issues(self, request: Request) -> Reply:
        status = request.arg("status_id", "open")
        found = [
            i
            for i in self.issues.values()
            if request.arg("project_id") in (None, self.project)
            and (
                status == "*" or (status == "open") != self._status(i["status"]["id"])["is_closed"]
            )
            and all(
                value == [f["value"] for f in i["custom_fields"] if f"cf_{f['id']}" == name][:1][0]
                if any(f"cf_{f['id']}" == name for f in i["custom_fields"])
                else False
                for name, [value] in request.query.items()
                if name.startswith("cf_")
            )
        ]
        if request.arg("sort") == "id:desc":
            found.sort(key=lambda i: -i["id"])
        offset, limit = int(request.arg("offset", "0")), int(request.arg("limit", "25"))
        return Reply(
            200,
            {
                "issues": found[offset : offset + limit],
                "total_count": len(found),
                "offset": offset,
                "limit": limit,
            },
        )

    @route("POST", r"/issues\.json")
    def create(self, request: Request) -> Reply:
        return self._create(request.json.get("issue", {}))

    @route("POST", r"/projects/(?P<project>[^/]+)/issues\.json")
    def create_in_project(self, request: Request) -> Reply:
        return self._create(
            {"project_id": request.params["project"], **request.json.get("issue", {})}
        )

    def _create(self, data: dict) -> Reply:
        errors = [
            f"{name} cannot be blank" for name in ("project_id", "subject") if not data.get(name)
        ]
        if data.get("project_id") not in (None, self.project):
            errors.append("Project is invalid")
        if errors:
            return Reply(422, {"errors": errors})
        issue_id = len(self.issues) + 1
        self.issues[issue_id] = {
            "id": issue_id,
            "project": {"id": 1, "name": self.project},
            "tracker": {"id": 1, "name": "Bug"},
            "status": {"id": 1, "name": "New", "is_closed": False},
            "subject": data["subject"],
            "description": data.get("description", ""),
            "created_on": "2026-11-26T02:00:00Z",
            "custom_fields": [
                {"id": f["id"], "name": "Fingerprint", "value": f["value"]}
                for f in data.get("custom_fields", [])
            ],
        }
        self.journals[issue_id] = []
        return Reply(201, {"issue": self.issues[issue_id]})

    @route("GET", r"/issues/(?P<id>\d+)\.json")
    def get(self, request: Request) -> Reply:
        """GET /issues/:id.json, with ``include=journals`` the issue's notes as journals."""
        issue = self.issues.get(int(request.params["id"]))
        if not issue:
            return self.not_found(request)
        include = [f for value in request.query.get("include", []) for f in value.split(",")]
        if "journals" in include:
            issue = {
                **issue,
                "journals": [
                    {"id": 900 + i, "notes": notes, "details": []}
                    for i, notes in enumerate(self.journals[issue["id"]])
                ],
            }
        return Reply(200, {"issue": issue})

    @route("PUT", r"/issues/(?P<id>\d+)\.json")
    def update(self, request: Request) -> Reply:
        issue = self.issues.get(int(request.params["id"]))
        if not issue:
            return self.not_found(request)
        data = request.json.get("issue", {})
        if "status_id" in data:
            if not any(s["id"] == int(data["status_id"]) for s in STATUSES):
                return Reply(422, {"errors": ["Status is not included in the list"]})
            issue["status"] = dict(self._status(int(data["status_id"])))
        if data.get("notes"):
            self.journals[issue["id"]].append(data["notes"])
        return Reply(204, None)

    def ticket_texts(self, ticket_id: str) -> list[str]:
        return [self.issues[int(ticket_id)]["description"], *self.journals[int(ticket_id)]]

    def states(self) -> list[str]:
        return [i["status"]["name"] for i in self.issues.values()]
