"""A Figma REST API look-alike on the sandbox kit: ``ada`` (``OWNER_TOKEN``) in team
``TEAM_ID`` with project ``PROJECT_ID`` and files ``FILE_KEY`` (45 versions) and
``OTHER_FILE_KEY``. Webhooks get a ``PING`` when created and the events of their context,
each body carrying the webhook's passcode; ``sb.fire("FILE_UPDATE", file_key=...)``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors import figma
from connectors.sandbox import Sandbox, SandboxError, fill, route

OWNER_TOKEN = "figd_sandboxOwnerToken000000000000000000"  # noqa: S105 (fake, sandbox only)
TEAM_ID, PROJECT_ID, FILE_KEY, OTHER_FILE_KEY = "1001", "2001", "FiLeKeY0001", "FiLeKeY0002"
TIME = "2025-03-03T10:00:00Z"


class FigmaSandbox(Sandbox):
    spec = figma.spec
    unauthenticated = (403, "Invalid token")

    def seed(self) -> None:
        self.tokens = {OWNER_TOKEN: "ada"}
        self.user = {"id": "42", "handle": "Ada", "email": "ada@example.com", "img_url": ""}
        self.files = {key: {"key": key, "name": f"Design {n}", "last_modified": TIME,
                            "thumbnail_url": f"https://figma.example/{key}.png"}
                      for n, key in enumerate((FILE_KEY, OTHER_FILE_KEY), 1)}  # fmt: skip
        self.versions = [{"id": str(900 + n), "created_at": TIME, "label": f"v{n}",
                          "description": None, "user": self.user}
                         for n in range(45, 0, -1)]  # fmt: skip
        self.comments: dict[str, list[dict]] = {key: [] for key in self.files}
        self.webhooks: list[dict] = []
        self.passcodes: dict[str, str] = {}

    def credential(self, request) -> str | None:
        return request.headers.get("x-figma-token")

    def error_body(self, status: int, message: str, **extra: Any) -> Any:
        return {"status": status, "err": message}

    def _file(self, file_key: str) -> dict:
        if file_key not in self.files:
            raise SandboxError(404, "Not found")
        return self.files[file_key]

    @route("GET", "/v1/me")
    def me(self, request, user):
        return self.answer("getMe", self.user)

    @route("GET", "/v1/teams/{team_id}/projects")
    def projects(self, request, user, team_id):
        self.one([{"id": TEAM_ID}], id=team_id)
        return self.answer(
            "getTeamProjects", {"name": "Acme", "projects": [{"id": PROJECT_ID, "name": "Web"}]}
        )

    @route("GET", "/v1/projects/{project_id}/files")
    def project_files(self, request, user, project_id):
        self.one([{"id": PROJECT_ID}], id=project_id)
        return self.answer("getProjectFiles", {"name": "Web", "files": list(self.files.values())})

    @route("GET", "/v1/files/{file_key}/meta")
    def meta(self, request, user, file_key):
        found = self._file(file_key)
        meta = {"name": found["name"], "folder_name": "Web", "last_touched_at": TIME,
                "creator": self.user, "thumbnail_url": found["thumbnail_url"],
                "editorType": "figma", "role": "owner", "link_access": "view",
                "url": f"https://figma.example/{file_key}"}  # fmt: skip
        return self.answer("getFileMeta", {"file": meta})

    @route("GET", "/v1/files/{file_key}/versions")
    def versions(self, request, user, file_key):
        self._file(file_key)
        size = int(request.query.get("page_size", ["30"])[0])
        before = request.query.get("before", [None])[0]
        older = [v for v in self.versions if before is None or int(v["id"]) < int(before)]
        page, rest = older[:size], older[size:]
        following = (
            f"{self.url}{request.path}?page_size={size}&before={page[-1]['id']}" if rest else None
        )
        return self.answer(
            "getFileVersions",
            {"versions": page, "pagination": {"next_page": following} if following else {}},
        )

    @route("GET", "/v1/files/{file_key}/comments")
    def list_comments(self, request, user, file_key):
        self._file(file_key)
        return self.answer("getComments", {"comments": self.comments[file_key]})

    @route("POST", "/v1/files/{file_key}/comments")
    def post_comment(self, request, user, file_key):
        found, message = self._file(file_key), self.require(self.body(request), "message")
        comment = {"id": str(3000 + len(self.comments[file_key])), "message": message,
                   "file_key": file_key, "user": self.user, "created_at": TIME, "parent_id": "",
                   "order_id": None, "reactions": []}  # fmt: skip
        self.comments[file_key].append(comment)
        self._event("FILE_COMMENT", found, comment=[{"text": message}], triggered_by=self.user)
        return self.answer("postComment", comment)

    @route("GET", "/v2/webhooks")
    def list_webhooks(self, request, user):
        context_id = request.query.get("context_id", [None])[0]
        found = [w for w in self.webhooks if context_id in (None, w["context_id"])]
        return self.answer("getWebhooks", {"webhooks": found, "pagination": {}})

    @route("POST", "/v2/webhooks")
    def create_webhook(self, request, user):
        data = self.body(request)
        hook = {"id": str(500 + len(self.webhooks)), "status": data.get("status", "ACTIVE"),
                "event_type": self.require(data, "event_type"), "team_id": TEAM_ID,
                "context": data.get("context", "team"),
                "context_id": self.require(data, "context_id"),
                "endpoint": self.require(data, "endpoint"), "description": data.get("description"),
                "plan_api_id": "plan-1", "client_id": None}  # fmt: skip
        self.passcodes[hook["id"]] = self.require(data, "passcode")
        self.webhooks.append(hook)
        self._deliver(hook, "PING", {})
        return self.answer("postWebhook", hook)

    @route("GET", "/v2/webhooks/{webhook_id}")
    def get_webhook(self, request, user, webhook_id):
        return self.answer("getWebhook", self.one(self.webhooks, id=webhook_id))

    @route("PUT", "/v2/webhooks/{webhook_id}")
    def update_webhook(self, request, user, webhook_id):
        hook, data = self.one(self.webhooks, id=webhook_id), self.body(request)
        hook.update(
            {k: data[k] for k in ("event_type", "endpoint", "status", "description") if k in data}
        )
        self.passcodes[webhook_id] = data.get("passcode", self.passcodes[webhook_id])
        return self.answer("putWebhook", hook)

    @route("DELETE", "/v2/webhooks/{webhook_id}")
    def delete_webhook(self, request, user, webhook_id):
        self.webhooks.remove(hook := self.one(self.webhooks, id=webhook_id))
        return self.answer("deleteWebhook", hook)

    def _event(self, event: str, file: dict, **payload: Any) -> list[str]:
        parts = {"file_key": file["key"], "file_name": file["name"], **payload}
        hooks = [h for h in self.webhooks if h["event_type"] == event and h["status"] == "ACTIVE"]
        return [self._deliver(hook, event, parts) for hook in hooks]

    def _deliver(self, hook: dict, event: str, parts: dict) -> str:
        schema = self.spec.component(
            f"Webhook{''.join(w.title() for w in event.split('_'))}Payload"
        )
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")  # one event, one time
        body = {"event_type": event, "passcode": self.passcodes[hook["id"]], "timestamp": now,
                "webhook_id": hook["id"], **parts}  # fmt: skip
        return self.deliver(hook["endpoint"], event, fill(schema, body, base_url=self.url))

    def fire(self, event: str, *, file_key: str = FILE_KEY, **payload: Any) -> list[str]:
        """``event`` (FILE_UPDATE, FILE_VERSION_UPDATE, …) on a file, to its webhooks."""
        if event not in figma.EVENTS or file_key not in self.files:
            raise ValueError(f"{self.name} fires {', '.join(figma.EVENTS)} on a file it has")
        with self.lock:
            return self._event(event, self.files[file_key], **payload)
