"""Tenancy by construction: a tenant-owned model's default manager refuses to run a query
that does not say whose rows it wants (``for_tenant``) or why it needs every organization's
(``unscoped``), while Django's own machinery keeps working."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db.models import Count, Prefetch
from django.utils import timezone

from portal.processflows.models import Deployment, Processflow
from portal.tenancy.admin import EveryTenantAdmin
from portal.tenancy.models import (
    Invitation,
    Membership,
    Organization,
    Role,
    TenantOwnedModel,
    TenantScopeError,
)
from tests.conftest import PASSWORD
from tests.factories import every, make_credential, make_deployment, make_processflow

REFUSAL = (
    "Membership.objects needs .for_tenant(organization) before {operation} "
    '(or .unscoped("reason") for system work across organizations).'
)


def _tenant_models() -> list[type[TenantOwnedModel]]:
    from django.apps import apps

    return [m for m in apps.get_models() if issubclass(m, TenantOwnedModel)]


def _invitation(organization, token_hash="0" * 64) -> Invitation:
    return Invitation.objects.create(
        organization=organization,
        email="new@example.com",
        token_hash=token_hash,
        expires_at=timezone.now() + timedelta(days=1),
    )


# --- The refusal --------------------------------------------------------------------------------


def test_a_query_without_a_tenant_is_refused_with_an_error_naming_the_model_and_the_way_out(cast):
    with pytest.raises(TenantScopeError) as refused:
        list(Membership.objects.filter(role=Role.OWNER))
    assert str(refused.value) == REFUSAL.format(operation="it reads rows")


@pytest.mark.parametrize(
    ("operation", "run"),
    [
        ("iteration", lambda q: [m for m in q]),
        ("len", len),
        ("bool", bool),
        ("get", lambda q: q.get(role=Role.VIEWER)),
        ("first", lambda q: q.first()),
        ("last", lambda q: q.last()),
        ("latest", lambda q: q.latest("created_at")),
        ("index", lambda q: q[0]),
        ("count", lambda q: q.count()),
        ("exists", lambda q: q.exists()),
        ("contains", lambda q: q.contains(Membership(pk=1))),
        ("aggregate", lambda q: q.aggregate(n=Count("pk"))),
        ("values", lambda q: list(q.values("role"))),
        ("values_list", lambda q: list(q.values_list("pk", flat=True))),
        ("in_bulk", lambda q: q.in_bulk([1, 2])),
        ("iterator", lambda q: list(q.iterator())),
        ("explain", lambda q: q.explain()),
        ("get_or_create", lambda q: q.get_or_create(role="nobody")),
        ("update_or_create", lambda q: q.update_or_create(role="nobody")),
        ("update", lambda q: q.update(role=Role.OWNER)),
        ("delete", lambda q: q.delete()),
        ("bulk_update", lambda q: q.bulk_update([Membership(pk=1, role="x")], ["role"])),
    ],
)
def test_every_way_of_running_a_query_without_a_tenant_is_refused(cast, operation, run):
    with pytest.raises(TenantScopeError):
        run(Membership.objects.all())
    assert every(Membership).count() == 5
    assert not every(Membership).filter(role="nobody").exists()
    assert every(Membership).filter(role=Role.OWNER).count() == 2


@pytest.mark.parametrize("model", _tenant_models(), ids=lambda model: model.__name__)
def test_every_tenant_owned_model_refuses_a_query_without_a_tenant(db, model):
    with pytest.raises(TenantScopeError, match=rf"^{model.__name__}\.objects needs \.for_tenant"):
        model.objects.count()
    assert model.objects.for_tenant(1).count() == 0


def test_a_query_can_be_built_without_a_tenant_and_scoped_before_it_runs(acme, cast):
    owners = Membership.objects.filter(role=Role.OWNER).select_related("user")
    assert [m.user for m in owners.for_tenant(acme)] == [cast["owner"]]


def test_repr_of_an_unscoped_query_says_so_instead_of_running_it(db):
    assert repr(Membership.objects.all()) == (
        "<TenantQuerySet of Membership, not scoped to a tenant>"
    )


# --- The scoped paths ---------------------------------------------------------------------------


def test_for_tenant_takes_an_organization_or_its_id(acme, globex, cast):
    by_organization = set(Membership.objects.for_tenant(acme).values_list("user", flat=True))
    by_id = set(Membership.objects.for_tenant(acme.pk).values_list("user", flat=True))
    acme_members = {cast[name].pk for name in ("owner", "admin", "member", "viewer")}
    assert by_organization == by_id == acme_members
    assert list(Membership.objects.for_tenant(globex.pk).values_list("user", flat=True)) == [
        cast["outsider"].pk
    ]


@pytest.mark.parametrize("wrong", [None, "acme", True, Organization(name="Unsaved")])
def test_for_tenant_refuses_what_is_not_an_organization(db, wrong):
    with pytest.raises(TenantScopeError, match="for_tenant"):
        Membership.objects.for_tenant(wrong)


def test_related_managers_are_scoped_by_the_instance_they_come_from(acme, owner):
    flow = make_processflow(acme, make_credential(acme))
    deployment = make_deployment(flow)

    assert list(flow.deployments.all()) == [deployment]
    assert flow.versions.count() == 1
    assert owner.memberships.filter(role=Role.OWNER).get().organization == acme
    assert owner.memberships.exists()


def test_prefetches_of_a_scoped_query_are_scoped_by_its_rows(acme, owner):
    flow = make_processflow(acme, make_credential(acme))
    deployment = make_deployment(flow)

    [fetched] = Processflow.objects.for_tenant(acme).prefetch_related(
        "versions", Prefetch("deployments", queryset=Deployment.objects.filter(state="active"))
    )
    assert [v.number for v in fetched.versions.all()] == [1]
    assert list(fetched.deployments.all()) == [deployment]


def test_creating_rows_needs_no_tenant_since_each_carries_its_organization(acme, cast):
    created = _invitation(acme)
    Invitation.objects.bulk_create(
        [
            Invitation(
                organization=acme,
                email=f"{n}@example.com",
                token_hash=f"{n}" * 64,
                expires_at=timezone.now(),
            )
            for n in (1, 2)
        ]
    )
    assert Invitation.objects.for_tenant(acme).count() == 3
    assert created.organization == acme


def test_an_empty_query_needs_no_tenant(db):
    assert list(Membership.objects.none()) == []
    assert Membership.objects.none().count() == 0


# --- The escape hatch ---------------------------------------------------------------------------


def test_the_escape_hatch_reads_every_organization(acme, globex, cast):
    everyone = Membership.objects.unscoped("tests look at every tenant's rows")
    assert set(everyone.values_list("organization", flat=True)) == {acme.pk, globex.pk}
    assert everyone.count() == 5


@pytest.mark.parametrize("reason", ["", "   ", None, 42])
def test_the_escape_hatch_requires_a_reason(db, reason):
    with pytest.raises(TenantScopeError, match=r"unscoped\(\) needs a reason"):
        Membership.objects.unscoped(reason)


def test_the_escape_hatch_cannot_be_opened_without_saying_anything(db):
    with pytest.raises(TypeError):
        Membership.objects.unscoped()


def test_a_scoped_query_combined_with_an_unscoped_one_is_refused(acme, globex, cast):
    scoped = Membership.objects.for_tenant(acme)
    unscoped = Membership.objects.filter(role=Role.OWNER)

    for combined in (scoped | unscoped, unscoped | scoped, scoped.union(unscoped)):
        with pytest.raises(TenantScopeError):
            list(combined)
    both = scoped | Membership.objects.for_tenant(globex)
    assert both.count() == 5


def test_raw_sql_is_system_work_and_needs_the_escape_hatch(acme, cast):
    sql = "SELECT * FROM tenancy_membership WHERE organization_id = %s"
    with pytest.raises(TenantScopeError, match=r"raw\(\) ignores for_tenant"):
        Membership.objects.for_tenant(acme).raw(sql, [acme.pk])
    assert len(list(Membership.objects.unscoped("tests").raw(sql, [acme.pk]))) == 4


# --- Django's machinery -------------------------------------------------------------------------


def test_saving_reloading_following_foreign_keys_and_cascades_need_no_tenant(acme, globex, cast):
    membership = Membership.objects.for_tenant(acme).get(user=cast["member"])
    membership.role = Role.ADMIN
    membership.save()
    membership.refresh_from_db()
    assert (membership.role, membership.organization, membership.user) == (
        Role.ADMIN,
        acme,
        cast["member"],
    )

    globex.delete()  # cascades to its memberships through Django's base manager

    assert every(Membership).filter(organization_id=globex.pk).count() == 0
    assert every(Membership).count() == 4


def test_unique_fields_are_checked_against_every_organizations_rows(acme, globex, cast):
    _invitation(globex, token_hash="a" * 64)
    clash = Invitation(
        organization=acme, email="x@example.com", token_hash="a" * 64, expires_at=timezone.now()
    )
    with pytest.raises(ValidationError) as refused:
        clash.full_clean()
    assert "token_hash" in refused.value.message_dict


def test_unique_constraints_are_checked_and_the_check_leaves_no_door_open(acme, cast):
    twice = Membership(organization=acme, user=cast["member"], role=Role.VIEWER)
    with pytest.raises(ValidationError, match="already exists"):
        twice.full_clean()
    with pytest.raises(TenantScopeError):
        Membership.objects.filter(user=cast["member"]).exists()


def test_dumpdata_dumps_tenant_owned_rows_through_the_base_manager_with_all(acme, cast):
    out = io.StringIO()
    call_command("dumpdata", "tenancy.membership", "--all", stdout=out)
    assert out.getvalue().count('"model": "tenancy.membership"') == 5

    with pytest.raises(CommandError, match=r"Membership\.objects needs \.for_tenant"):
        call_command("dumpdata", "tenancy.membership", stdout=io.StringIO())


# --- The admin site: operators see every organization ----------------------------------------


@pytest.fixture
def operator(client, db):
    user = get_user_model().objects.create_superuser(email="root@ops.test", password=PASSWORD)
    client.force_login(user)
    return client


def test_every_admin_of_a_tenant_owned_model_reads_through_the_escape_hatch():
    admins = [*admin.site._registry.values()]
    admins += [inline for a in list(admins) for inline in a.inlines]
    tenant_owned = [a for a in admins if issubclass(a.model, TenantOwnedModel)]
    assert tenant_owned
    assert [
        a
        for a in tenant_owned
        if not issubclass(a if isinstance(a, type) else type(a), EveryTenantAdmin)
    ] == []


def test_the_admin_lists_and_edits_every_organizations_memberships(operator, acme, globex, cast):
    listing = operator.get("/admin/tenancy/membership/")
    assert listing.status_code == 200
    assert {"owner@acme.test", "outsider@globex.test"} <= {
        m.user.email for m in listing.context["cl"].result_list
    }

    outsider = every(Membership).get(user=cast["outsider"])
    page = f"/admin/tenancy/membership/{outsider.pk}/change/"
    assert operator.get(page).status_code == 200
    saved = operator.post(
        page, {"user": cast["outsider"].pk, "organization": globex.pk, "role": Role.ADMIN}
    )
    assert saved.status_code == 302, saved.context["adminform"].errors
    outsider.refresh_from_db()
    assert outsider.role == Role.ADMIN

    clash = operator.post(
        page, {"user": cast["owner"].pk, "organization": acme.pk, "role": Role.ADMIN}
    )
    assert clash.status_code == 200
    assert "already exists" in str(clash.context["adminform"].form.non_field_errors())


def test_the_admin_edits_an_organizations_members_inline(operator, acme, cast):
    page = f"/admin/tenancy/organization/{acme.pk}/change/"
    shown = operator.get(page)
    assert shown.status_code == 200
    [inline] = shown.context["inline_admin_formsets"]
    prefix = inline.formset.prefix
    memberships = [form.instance for form in inline.formset.forms]
    form = {
        "name": "Acme Inc",
        "slug": "acme",
        f"{prefix}-TOTAL_FORMS": len(memberships),
        f"{prefix}-INITIAL_FORMS": len(memberships),
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    for n, membership in enumerate(memberships):
        role = Role.MEMBER if membership.user == cast["viewer"] else membership.role
        form |= {
            f"{prefix}-{n}-id": membership.pk,
            f"{prefix}-{n}-organization": acme.pk,
            f"{prefix}-{n}-user": membership.user_id,
            f"{prefix}-{n}-role": role,
        }
    saved = operator.post(page, form)
    assert saved.status_code == 302, saved.context["errors"]
    assert Membership.objects.for_tenant(acme).get(user=cast["viewer"]).role == Role.MEMBER


def test_an_admin_form_offers_every_organizations_rows_as_tenant_owned_choices(
    rf, acme, globex, owner, outsider
):
    class DeploymentAdmin(EveryTenantAdmin, admin.ModelAdmin):
        pass

    ours = make_processflow(acme, make_credential(acme)).versions.get()
    theirs = make_processflow(globex, make_credential(globex)).versions.get()
    field = DeploymentAdmin(Deployment, admin.site).formfield_for_foreignkey(
        Deployment._meta.get_field("version"), rf.get("/admin/")
    )
    assert set(field.queryset) == {ours, theirs}
