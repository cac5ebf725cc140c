"""Jira Cloud REST API (developer.atlassian.com/cloud/jira/platform/rest/v3 and v2): serverInfo,
fields, the current JQL search GET /rest/api/3/search/jql (token-paged: ``nextPageToken``/``isLast``),
the removed search endpoints (/rest/api/2|3/search answer 410 Gone, as on Cloud since 2025), issue
create/get, comments, and workflow transitions.  Auth: HTTP Basic with e-mail/user and API token."""

from __future__ import annotations

import base64
import re

from support.tracker_doubles import Reply, Request, TrackerDouble, route

API = r"/rest/api/(?P<version>[23])"
ISSUE = API + r"/issue/(?P<key>[A-Z]+-\d+)"
STATUSES = {"To Do": "new", "Reopened": "new", "Done": "done"}
WORKFLOW = {"To Do": [("31", "Done")], "Reopened": [("31", "Done")], "Done": [("41", "Reopen")]}
CLAUSE = re.compile(r'^\s*(\w+)\s*=\s*"([^"]*)"\s*$')


class JiraDouble(TrackerDouble):
    def __init__(self, user: str, token: str, project: str = "HPC"):
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        self.project = project
        self.issues: dict[str, dict] = {}
        self.comments: dict[str, list[str]] = {}

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == self.auth

    def unauthorised(self) -> Reply:
        return Reply(
            401,
            {
                "errorMessages": [
                    "You are not authenticated. Authentication required to perform this operation."
                ],
                "errors": {},
            },
        )

    def not_found(self, request: Request) -> Reply:
        return Reply(
            404,
            {
                "errorMessages": ["Issue does not exist or you do not have permission to see it."],
                "errors": {},
            },
        )

    @route("GET", API + r"/serverInfo")
    def server_info(self, request: Request) -> Reply:
        return Reply(
            200,
            {
                "baseUrl": self.url,
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0],
                "deploymentType": "Cloud",
                "buildNumber": 100280,
                "serverTitle": "Jira",
            },
        )

    @route("GET", API + r"/field")
    def fields(self, request: Request) -> Reply:
        return Reply(
            200,
            [
                {
                    "id": name,
                    "key": name,
                    "name": name.capitalize(),
                    "custom": False,
                    "clauseNames": [name],
                }
                for name in (
                    "summary",
                    "description",
                    "labels",
                    "status",
                    "resolution",
                    "issuetype",
                    "project",
                )
            ],
        )

    @route("GET", API + r"/search")
    def removed_search(self, request: Request) -> Reply:
        return Reply(
            410,
            {
                "errorMessages": [
                    "The requested API has been removed. Please migrate to the "
                    "/rest/api/3/search/jql API. A full migration guideline is "
                    "available at https://developer.atlassian.com/changelog/#CHANGE-2046"
                ],
                "errors": {},
            },
        )

    removed_search_post = route("POST", API + r"/search")(removed_search)

    def _matches(self, jql: str) -> list[dict] | Reply:
        where, _, order = jql.partition(" ORDER BY ")
        wanted = {}
        for clause in where.split(" AND "):
            match = CLAUSE.match(clause)
            if not match or match.group(1) not in ("project", "labels"):
                return Reply(
                    400,
                    {
                        "errorMessages": [f"Error in the JQL Query: {clause.strip()!r}"],
                        "errors": {},
                    },
                )
            wanted[match.group(1)] = match.group(2)
        found = [
            i
            for i in self.issues.values()
            if wanted.get("project", i["fields"]["project"]["key"]) == i["fields"]["project"]["key"]
            and ("labels" not in wanted or wanted["labels"] in i["fields"]["labels"])
        ]
        return sorted(
            found, key=lambda i: int(i["id"]), reverse=order.strip().upper() == "CREATED DESC"
        )

    @route("GET", r"/rest/api/3/search/jql")
    def search_jql(self, request: Request) -> Reply:
        found = self._matches(request.arg("jql", ""))
        if isinstance(found, Reply):
            return found
        start = int(request.arg("nextPageToken") or 0)
        size = int(request.arg("maxResults") or 50)
        page = found[start : start + size]
        body = {"issues": page, "isLast": start + size >= len(found)}
        if not body["isLast"]:
            body["nextPageToken"] = str(start + size)
        return Reply(200, body)

    @route("POST", API + r"/issue")
    def create_issue(self, request: Request) -> Reply:
        fields = request.json.get("fields", {})
        missing = [name for name in ("project", "summary", "issuetype") if not fields.get(name)]
        if missing or fields["project"].get("key") != self.project:
            return Reply(
                400,
                {
                    "errorMessages": [],
                    "errors": {name: f"{name} is required." for name in missing}
                    or {"project": "valid project is required"},
                },
            )
        number = len(self.issues) + 1
        key = f"{self.project}-{number}"
        self.issues[key] = {
            "id": str(10000 + number),
            "key": key,
            "self": f"{self.url}/rest/api/2/issue/{10000 + number}",
            "fields": {
                "summary": fields["summary"],
                "description": fields.get("description"),
                "labels": fields.get("labels", []),
                "project": {"key": self.project},
                "issuetype": {"name": fields["issuetype"]["name"]},
                "resolution": None,
                "status": {"name": "To Do", "statusCategory": {"key": "new"}},
            },
        }
        self.comments[key] = []
        return Reply(
            201, {"id": self.issues[key]["id"], "key": key, "self": self.issues[key]["self"]}
        )

    def _issue(self, request: Request) -> dict | None:
        return self.issues.get(request.params["key"])

    @route("GET", ISSUE)
    def get_issue(self, request: Request) -> Reply:
        issue = self._issue(request)
        return Reply(200, issue) if issue else self.not_found(request)

    @route("POST", ISSUE + r"/comment")
    def add_comment(self, request: Request) -> Reply:
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        self.comments[issue["key"]].append(request.json["body"])
        number = len(self.comments[issue["key"]])
        return Reply(
            201,
            {
                "id": str(number),
                "body": request.json["body"],
                "self": f"{issue['self']}/comment/{number}",
            },
        )

    @route("GET", ISSUE + r"/comment")
    def list_comments(self, request: Request) -> Reply:
        """GET /rest/api/2/issue/{key}/comment: a page of comments, oldest first."""
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        comments = [
            {"id": str(i), "body": body, "self": f"{issue['self']}/comment/{i}"}
            for i, body in enumerate(self.comments[issue["key"]], 1)
        ]
        return Reply(
            200, {"startAt": 0, "maxResults": 5000, "total": len(comments), "comments": comments}
        )

    @route("GET", ISSUE + r"/transitions")
    def transitions(self, request: Request) -> Reply:
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        status = issue["fields"]["status"]["name"]
        return Reply(
            200,
            {
                "expand": "transitions",
                "transitions": [
                    {
                        "id": tid,
                        "name": name,
                        "to": {"name": "Done" if name == "Done" else "Reopened"},
                    }
                    for tid, name in WORKFLOW[status]
                ],
            },
        )

    @route("POST", ISSUE + r"/transitions")
    def transition(self, request: Request) -> Reply:
        issue = self._issue(request)
        if not issue:
            return self.not_found(request)
        data = request.json
        allowed = dict(WORKFLOW[issue["fields"]["status"]["name"]])
        tid = str(data.get("transition", {}).get("id"))
        if tid not in allowed:
            return Reply(
                400,
                {
                    "errorMessages": [f"Transition id '{tid}' is not valid for this issue."],
                    "errors": {},
                },
            )
        status = "Done" if allowed[tid] == "Done" else "Reopened"
        issue["fields"]["status"] = {"name": status, "statusCategory": {"key": STATUSES[status]}}
        issue["fields"]["resolution"] = {"name": "Done"} if status == "Done" else None
        for change in data.get("update", {}).get("comment", []):
            self.comments[issue["key"]].append(change["add"]["body"])
        return Reply(204)

    def ticket_texts(self, ticket_id: str) -> list[str]:
        return [self.issues[ticket_id]["fields"]["description"], *self.comments[ticket_id]]

    def states(self) -> list[str]:
        return [i["fields"]["status"]["name"] for i in self.issues.values()]
