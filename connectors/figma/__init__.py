"""Figma (REST API): the user, team projects and files, versions, comments and webhooks.

The smallest complete connector: actions imported from Figma's OpenAPI description
(``openapi/``, see SOURCE.md), a personal access token in ``X-Figma-Token``, pages that name
the next one in the body. A webhook takes one event in a team, project or file (options
context and context_id); it proves itself with the passcode the portal gave it, sent back in
every delivery's body (cut out before the event is stored).
"""

from connectors import kit

spec = kit.OpenApi.load(kit.here(__file__, "openapi/openapi.json"))
EVENTS = [e for e in spec.component("WebhookV2Event")["enum"] if e != "PING"]

connector = kit.Connector(
    name="figma",
    display_name="Figma",
    description="Design files: projects, files, versions, comments and webhooks.",
    documentation_url="https://www.figma.com/developers/api",
    base_url="https://api.figma.com",
    credential_types=[
        kit.token(
            "token",
            "Personal access token",
            auth=kit.ApiKeyHeader,
            header="X-Figma-Token",
            help="Create one in Figma under Settings > Security > Personal access tokens.",
        )
    ],
    actions=spec.actions(
        me="getMe",
        list_projects="getTeamProjects",
        list_project_files="getProjectFiles",
        file_meta="getFileMeta",
        list_versions=("getFileVersions", {"pagination": kit.NextUrlPagination("versions")}),
        list_comments="getComments",
        post_comment="postComment",
        list_webhooks=("getWebhooks", {"pagination": kit.NextUrlPagination("webhooks")}),
        get_webhook="getWebhook",
        create_webhook="postWebhook",
        update_webhook="putWebhook",
        delete_webhook="deleteWebhook",
    ),
    validation_action="me",
    account=kit.account(uri="id", name="handle", email="email"),
    webhooks=kit.ActionWebhooks(
        events=EVENTS,
        max_events=1,
        options=(
            kit.SubscriptionOption(
                "context", "Context", choices=("team", "project", "file"), default="team"
            ),
            kit.SubscriptionOption(
                "context_id", "Context id", help="The team's, project's or file's id."
            ),
        ),
        create="create_webhook",
        list="list_webhooks",
        get="get_webhook",
        delete="delete_webhook",
        body={
            "event_type": "{event}",
            "context": "{context}",
            "context_id": "{context_id}",
            "endpoint": "{url}",
            "passcode": "{secret}",
            "description": "Connect Portal",
        },
        shape=kit.SubscriptionShape(
            callback_url="endpoint", events="event_type", state="status", active_states=("ACTIVE",)
        ),
        signature=kit.PasscodeInBody("passcode"),
        event_name=kit.EventName(body="event_type"),
        dedupe=kit.DedupeKey("figma", body=("webhook_id", "event_type", "timestamp", "file_key")),
    ),
)
