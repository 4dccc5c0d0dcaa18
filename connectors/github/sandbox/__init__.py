"""A GitHub REST API look-alike on the sandbox kit: ``octocat`` (``OWNER_TOKEN``) owns 35
repositories, ``hello-world`` with issues #1-#3 (#3 closed) and pull request #4; ``hubot``
(``OTHER_TOKEN``) owns the private ``hubot-scripts``. Repository webhooks get a ``ping``,
then the ``issues`` and ``issue_comment`` events, signed ``X-Hub-Signature-256``."""

from __future__ import annotations

from typing import Any

from connectors import github
from connectors.sandbox import Sandbox, fill, invalid, route

OWNER_TOKEN = "ghp_sandboxOwnerToken0000000000000000000"  # noqa: S105 (fake, sandbox only)
OTHER_TOKEN = "ghp_sandboxOtherToken0000000000000000000"  # noqa: S105
SIGNATURE, HOOKS = github.connector.webhooks.signature, github.hooks


class GitHubSandbox(Sandbox):
    spec = github.rest
    error_fields = {"documentation_url": "https://docs.github.com/rest"}
    reset_as_time = True

    def seed(self) -> None:
        self.tokens = {OWNER_TOKEN: "octocat", OTHER_TOKEN: "hubot"}
        self.users = {login: {"login": login, "id": n, "node_id": f"U_{n}", "type": "User",
                              "name": login.title(), "email": f"{login}@example.com",
                              "html_url": f"https://github.com/{login}", "site_admin": False}
                      for n, login in enumerate(self.tokens.values(), 1)}  # fmt: skip
        self.repos, self.issues, self.hooks, self.secrets = {}, {}, {}, {}
        for n in range(1, 36):
            self._repo("octocat", "hello-world" if n == 1 else f"project-{n:02d}", n)
        self._repo("hubot", "hubot-scripts", 99, private=True)
        for title in ("Found a bug", "Add a dark mode", "Typo in README"):
            self._issue("octocat/hello-world", "octocat", title)
        self.issues["octocat/hello-world"][2]["state"] = "closed"
        self._issue("octocat/hello-world", "hubot", "Fix the bug", pull=True)

    def _repo(self, owner: str, name: str, number: int, private: bool = False) -> None:
        full = f"{owner}/{name}"
        self.repos[full] = {
            "id": 1000 + number, "node_id": f"R_{number}", "name": name, "full_name": full,
            "private": private, "owner": self.users[owner], "default_branch": "main",
            "html_url": f"https://github.com/{full}", "description": f"{name} (sandbox)",
        }  # fmt: skip
        self.issues[full], self.hooks[full] = [], []

    def _issue(self, full: str, login: str, title: str, body: str = "", pull: bool = False):
        number = len(self.issues[full]) + 1
        issue = {"id": 5000 + number, "number": number, "title": title, "body": body or None,
                 "state": "open", "user": self.users[login], "labels": [], "comments": 0,
                 "html_url": f"https://github.com/{full}/issues/{number}", "pull": pull,
                 "author_association": "OWNER", "repo": full, "comment_list": []}  # fmt: skip
        self.issues[full].append(issue)
        return issue

    def params(self, request, user, owner=None, repo=None, **params) -> dict[str, Any]:
        # The repository a path names, if the token may see (and, to write, administer) it.
        full, admin = f"{owner}/{repo}", request.method != "GET" or "/hooks" in request.path
        found = self.repos.get(full, {"private": True, "owner": {}})
        mine = found["owner"].get("login") == user or "/comments" in request.path
        if owner is not None and (found["private"] or admin) and not mine:
            self.one([])
        return params | ({"full": full} if owner is not None else {})

    def _view(self, issue: dict, pull: bool = False) -> dict:
        repo = f"{self.url}/repos/{issue['repo']}"
        url = f"{repo}/{'pulls' if pull else 'issues'}/{issue['number']}"
        view = {k: v for k, v in issue.items() if k not in ("pull", "repo", "comment_list")}
        linked = {"pull_request": {"url": url}} if issue["pull"] and not pull else {}
        return view | linked | {"url": url, "repository_url": repo}

    @route("GET", "/user")
    def me(self, request, user):
        return self.answer("users/get-authenticated", self.users[user])

    @route("GET", "/user/repos")
    def my_repos(self, request, user):
        mine = [r for r in self.repos.values() if r["owner"]["login"] == user]
        return self.link_page(request, "repos/list-for-authenticated-user", mine)

    @route("GET", "/repos/{owner}/{repo}")
    def repo(self, request, user, full):
        return self.answer("repos/get", self.repos[full])

    @route("GET", "/repos/{owner}/{repo}/issues")
    def list_issues(self, request, user, full):
        state = request.query.get("state", ["open"])[0]
        found = [self._view(i) for i in self.issues[full] if state in ("all", i["state"])]
        return self.link_page(request, "issues/list-for-repo", found)

    @route("POST", "/repos/{owner}/{repo}/issues")
    def create_issue(self, request, user, full):
        data = self.body(request)
        title = self.require(data, "title", resource="Issue")
        issue = self._view(self._issue(full, user, title, data.get("body") or ""))
        self._event(full, "issues", "opened", user, issue=issue)
        return self.answer("issues/create", issue, 201)

    @route("GET", "/repos/{owner}/{repo}/issues/{number}")
    def issue(self, request, user, full, number):
        found = self.one(self.issues[full], number=number, pull=False)
        return self.answer("issues/get", self._view(found))

    @route("POST", "/repos/{owner}/{repo}/issues/{number}/comments")
    def comment(self, request, user, full, number):
        text = self.require(self.body(request), "body", resource="IssueComment")
        issue = self.one(self.issues[full], number=number, pull=False)
        issue["comments"] += 1
        comment = {"id": 9000 + issue["comments"], "body": text, "user": self.users[user],
                   "html_url": f"{issue['html_url']}#issuecomment-{issue['comments']}"}  # fmt: skip
        issue["comment_list"].append(comment)
        self._event(
            full, "issue_comment", "created", user, issue=self._view(issue), comment=comment
        )
        return self.answer("issues/create-comment", comment, 201)

    @route("GET", "/repos/{owner}/{repo}/issues/{number}/comments")
    def comments(self, request, user, full, number):
        issue = self.one(self.issues[full], number=number)
        return self.link_page(request, "issues/list-comments", issue["comment_list"])

    @route("GET", "/repos/{owner}/{repo}/pulls")
    def pulls(self, request, user, full):
        found = [self._view(i, pull=True) for i in self.issues[full] if i["pull"]]
        return self.link_page(request, "pulls/list", found)

    @route("GET", "/repos/{owner}/{repo}/pulls/{number}")
    def pull(self, request, user, full, number):
        found = self.one(self.issues[full], number=number, pull=True)
        return self.answer("pulls/get", self._view(found, pull=True))

    @route("GET", "/repos/{owner}/{repo}/hooks")
    def list_hooks(self, request, user, full):
        return self.link_page(request, "repos/list-webhooks", self.hooks[full])

    @route("POST", "/repos/{owner}/{repo}/hooks")
    def create_hook(self, request, user, full):
        data, number = self.body(request), 700 + sum(map(len, self.hooks.values()))
        config = {"content_type": "form", "insecure_ssl": "0", **(data.get("config") or {})}
        if any(h["config"]["url"] == self.require(config, "url") for h in self.hooks[full]):
            raise invalid("Hook already exists on this repository", resource="Hook", code="custom")
        url, self.secrets[number] = f"{self.url}/repos/{full}/hooks/{number}", config.get("secret")
        hook = {"id": number, "name": "web", "type": "Repository", "url": url,
                "test_url": f"{url}/test", "ping_url": f"{url}/pings", "config": config,
                "active": data.get("active", True), "events": data.get("events", ["push"]),
                "last_response": {"code": None, "status": "unused"}}  # fmt: skip
        self.hooks[full].append(hook := _masked(hook))
        self._send(full, hook, "ping", {"zen": "Keep it simple.", "hook_id": number, "hook": hook})
        return self.answer("repos/create-webhook", hook, 201)

    @route("GET", "/repos/{owner}/{repo}/hooks/{hook_id}")
    def get_hook(self, request, user, full, hook_id):
        return self.answer("repos/get-webhook", self.one(self.hooks[full], id=hook_id))

    @route("PATCH", "/repos/{owner}/{repo}/hooks/{hook_id}")
    def update_hook(self, request, user, full, hook_id):
        hook, data = self.one(self.hooks[full], id=hook_id), self.body(request)
        hook.update({k: data[k] for k in ("active", "events") if k in data})
        config = data.get("config") or {}
        self.secrets[hook["id"]] = config.get("secret", self.secrets[hook["id"]])
        hook["config"].update(_masked(data)["config"])
        return self.answer("repos/update-webhook", hook)

    @route("DELETE", "/repos/{owner}/{repo}/hooks/{hook_id}")
    def delete_hook(self, request, user, full, hook_id):
        self.hooks[full].remove(self.one(self.hooks[full], id=hook_id))
        return self.answer("repos/delete-webhook", None, 204)

    def _event(self, full: str, topic: str, action: str, login: str, **parts: Any) -> list[str]:
        body = dict(parts, action=action, repository=self.repos[full], sender=self.users[login])
        hooks = [h for h in self.hooks[full] if h["active"] and topic in h["events"]]
        return [self._send(full, hook, topic, body) for hook in hooks]

    def _send(self, full: str, hook: dict, topic: str, body: dict) -> str:
        event = f"{topic}.{body['action']}" if "action" in body else topic
        headers = {"X-GitHub-Event": topic, "X-GitHub-Hook-ID": str(hook["id"]),
                   "User-Agent": "GitHub-Hookshot/sandbox",
                   "X-GitHub-Hook-Installation-Target-Type": "repository",
                   "X-GitHub-Hook-Installation-Target-ID": str(self.repos[full]["id"])}  # fmt: skip
        payload = fill(HOOKS.webhook_schema(event), body, base_url=self.url)
        return self.deliver(
            hook["config"]["url"], event, payload, headers=headers, signature=SIGNATURE,
            key=self.secrets.get(hook["id"]), id_header="X-GitHub-Delivery",
        )  # fmt: skip

    def fire(self, event: str, *, owner="octocat", repo="hello-world", **payload: Any) -> list[str]:
        """``issues.opened`` in a repository (by its owner), delivered to its webhooks."""
        full = f"{owner}/{repo}"
        if event != "issues.opened" or full not in self.repos:
            raise ValueError(f"{self.name} fires issues.opened in a repository it has")
        with self.lock:
            issue = self._issue(
                full, owner, payload.get("title", "Opened"), payload.get("body", "")
            )
            return self._event(full, "issues", "opened", owner, issue=self._view(issue))


def _masked(data: dict) -> dict:  # GitHub never shows a hook's secret
    config = data.get("config") or {}
    return data | {"config": config | ({"secret": "********"} if config.get("secret") else {})}
