"""Where the portal may read across organizations, read from the code.

A tenant-owned model's default manager refuses to run a query that is not scoped to a tenant
(``tests/tenancy/test_scoping.py``): that is the real guard. These checks make the exceptions
a decision someone reviews: every use of the escape hatch ``Model.objects.unscoped(reason)``
and every raw SQL statement on tenant tables is listed here with its reason, and a query
written as ``<TenantModel>.objects.<method>`` says ``for_tenant`` or ``unscoped`` in the same
chain (best effort: a query built in one place and scoped in another is left to the runtime
guard).
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.apps import apps

from portal.tenancy.models import TenantOwnedModel

ROOT = Path(__file__).resolve().parents[2]

#: Every use of ``.unscoped(reason)`` in ``portal/``, and its reason: system work that spans
#: organizations. At most ten, each one a decision.
ESCAPE_HATCHES = {
    # Intake finds its tenant by the hook id in raw SQL (RAW_SQL below), then scopes.
    ("portal/api/authentication.py", "a bearer token finds its organization by its hash"),
    ("portal/tenancy/services.py", "an invitation link finds its organization by its hash"),
    ("portal/processflows/outbox.py", "the sweeper re-queues every organization's lost runs"),
    ("portal/processflows/registration.py", "the reconciler checks every organization's webhooks"),
    ("portal/vault/tasks.py", "the periodic re-validation checks every credential"),
    ("portal/vault/rotation.py", "key rotation re-wraps and re-encrypts every organization"),
    ("portal/vault/keys.py", "start-up check: every stored data key must open"),
    ("portal/tenancy/admin.py", "the admin site: operators see every organization"),
    ("portal/ops/backlog.py", "metrics count every organization's unfinished runs"),
}
MAX_ESCAPE_HATCHES = 10

#: Modules that run raw SQL on tenant tables (system work as well), and why.
RAW_SQL = {
    "portal/processflows/eventstore.py": "webhook intake finds the deployment behind a hook id "
    "and stores a delivery with its outbox entry, one statement each (the hot path)",
}

#: What a tenant-owned manager may do without a tenant: insert rows that carry their
#: organization, or build an empty query.
ALLOWED_WITHOUT_TENANT = {"create", "bulk_create", "none"}
SCOPES = {"for_tenant", "unscoped"}


def _tenant_models() -> dict[str, type[TenantOwnedModel]]:
    return {
        model.__name__: model for model in apps.get_models() if issubclass(model, TenantOwnedModel)
    }


def _portal_modules() -> list[Path]:
    return [
        path for path in sorted((ROOT / "portal").rglob("*.py")) if "migrations" not in path.parts
    ]


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _chain(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[str]:
    """The methods called on ``node`` one after the other: ``X.objects.a().b[:3].c()`` ->
    ``["a", "b", "c"]`` for the ``X.objects`` node."""
    methods = []
    while True:
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            methods.append(parent.attr)
            node = parent
        elif isinstance(parent, ast.Call | ast.Subscript) and node in (
            getattr(parent, "func", None),
            getattr(parent, "value", None),
        ):
            node = parent
        else:
            return methods


def unscoped_queries(source: str, tenant_models, *, filename: str = "<source>") -> list[str]:
    """``line: Model.objects.method`` for each query of a tenant-owned model in ``source``
    that neither says whose rows (``for_tenant``) nor why it needs everyone's
    (``unscoped``)."""
    tree = ast.parse(source, filename)
    parents = _parents(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in ("objects", "_default_manager")):
            continue
        owner = node.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
        if name not in tenant_models:
            continue
        methods = _chain(node, parents)
        if SCOPES & set(methods) or (methods and methods[0] in ALLOWED_WITHOUT_TENANT):
            continue
        found.append((node.lineno, f"{name}.{node.attr}.{'.'.join(methods) or '(passed on)'}"))
    return [f"{line}: {query}" for line, query in sorted(found)]


def escape_hatches(source: str, *, filename: str = "<source>") -> list[tuple[int, str | None]]:
    """``(line, reason)`` of each ``.unscoped(...)`` call; the reason is None unless it is
    written out as a string."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "unscoped"
        ):
            given = [*node.args, *(k.value for k in node.keywords if k.arg == "reason")]
            reason = given[0].value if given and isinstance(given[0], ast.Constant) else None
            found.append((node.lineno, reason if isinstance(reason, str) else None))
    return sorted(found, key=lambda item: item[0])


def test_no_portal_module_queries_a_tenant_owned_model_without_a_tenant():
    tenant_models = _tenant_models()
    unscoped = [
        f"{path.relative_to(ROOT)}:{where}"
        for path in _portal_modules()
        for where in unscoped_queries(path.read_text(), tenant_models, filename=str(path))
    ]
    assert unscoped == []


def test_the_escape_hatch_is_used_only_in_the_listed_places_each_with_its_reason():
    used = [
        (str(path.relative_to(ROOT)), reason)
        for path in _portal_modules()
        for _, reason in escape_hatches(path.read_text(), filename=str(path))
    ]
    assert sorted(used) == sorted(ESCAPE_HATCHES)
    assert len(used) <= MAX_ESCAPE_HATCHES


def test_raw_sql_on_tenant_tables_runs_only_in_the_listed_places():
    tables = {model._meta.db_table for model in _tenant_models().values()}
    raw = sorted(
        str(path.relative_to(ROOT))
        for path in _portal_modules()
        if any(table in path.read_text() for table in tables)
    )
    assert raw == sorted(RAW_SQL)


def test_the_static_check_finds_queries_without_a_tenant():
    source = """
Run.objects.filter(status="queued").update(status="failed")
Run.objects.for_tenant(org).filter(status="queued").update(status="failed")
Run.objects.unscoped("the sweeper").count()
Run.objects.create(organization=org)
models.Deployment.objects.select_related("version")[:3].first()
Deployment._default_manager.get(pk=1)
manager = Credential.objects
Outbox.objects.filter(done_at=None).count()
"""
    models = {"Run": None, "Deployment": None, "Credential": None}
    assert unscoped_queries(source, models) == [
        "2: Run.objects.filter.update",
        "6: Deployment.objects.select_related.first",
        "7: Deployment._default_manager.get",
        "8: Credential.objects.(passed on)",
    ]


def test_the_static_check_reads_each_escape_hatchs_reason():
    source = """
Run.objects.unscoped("the sweeper re-queues lost runs")
Run.objects.unscoped(reason="key rotation")
Run.objects.unscoped(REASON)
"""
    assert escape_hatches(source) == [
        (2, "the sweeper re-queues lost runs"),
        (3, "key rotation"),
        (4, None),
    ]
