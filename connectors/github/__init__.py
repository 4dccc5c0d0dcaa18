"""GitHub (REST API): the user, repositories, issues, pull requests and repository webhooks.

Actions are imported from GitHub's own OpenAPI description (``openapi/``, see SOURCE.md).
A personal access token (fine-grained or classic) is sent as a Bearer token; pages follow
the ``Link`` header. Deploying a triggered flow creates a repository webhook (options owner
and repo) signed ``X-Hub-Signature-256: sha256=<HMAC of the body>``; an event's name is
``X-GitHub-Event`` plus the body's ``action`` (``issues.opened``), its identity the
``X-GitHub-Delivery`` id.
"""

from connectors import kit

rest = kit.OpenApi.load(kit.here(__file__, "openapi/rest.json"))
hooks = kit.OpenApi.load(kit.here(__file__, "openapi/webhooks.json"))
ACCESS = (
    "A fine-grained token (Settings > Developer settings) with read access to metadata and "
    "read/write to issues, pull requests and webhooks of the repositories, or a classic "
    "token with repo and admin:repo_hook."
)

connector = kit.Connector(
    name="github",
    display_name="GitHub",
    description="Repositories, issues, pull requests and repository webhooks.",
    documentation_url="https://docs.github.com/rest",
    base_url="https://api.github.com",
    credential_types=[kit.token("token", "Personal access token", help=ACCESS)],
    actions=rest.actions(
        user="users/get-authenticated",
        list_repos="repos/list-for-authenticated-user",
        get_repo="repos/get",
        list_issues="issues/list-for-repo",
        get_issue="issues/get",
        create_issue="issues/create",
        comment_issue="issues/create-comment",
        list_issue_comments="issues/list-comments",
        list_pulls="pulls/list",
        get_pull="pulls/get",
        list_webhooks="repos/list-webhooks",
        get_webhook="repos/get-webhook",
        create_webhook="repos/create-webhook",
        update_webhook="repos/update-webhook",
        delete_webhook="repos/delete-webhook",
    ),
    validation_action="user",
    account=kit.account(uri="html_url", name="login", email="email", details=("name",)),
    rate_limit_per_minute=80,  # 5,000 requests an hour per token
    unauthorized_message="GitHub rejected the token (401). Check it and validate again.",
    webhooks=kit.ActionWebhooks(
        events=hooks.webhook_events("issues", "issue_comment", "pull_request"),
        options=(
            kit.SubscriptionOption("owner", "Owner", help="The repository's user or organization."),
            kit.SubscriptionOption("repo", "Repository", help="The repository's name."),
        ),
        create="create_webhook",
        list="list_webhooks",
        get="get_webhook",
        delete="delete_webhook",
        body={
            "name": "web",
            "active": True,
            "events": "{events}",
            "config": {"url": "{url}", "content_type": "json", "secret": "{secret}"},
        },
        shape=kit.SubscriptionShape(uri="url", callback_url="config.url", active="active"),
        signature=kit.HmacSignature("X-Hub-Signature-256", prefix="sha256="),
        event_name=kit.EventName(header="X-GitHub-Event", body="action"),
        dedupe=kit.DedupeKey("github", header="X-GitHub-Delivery"),
        kept_headers=("X-GitHub-Hook-ID",),
    ),
)
