"""Polling flows: deploying schedules them in django-celery-beat (editable, removed on
undeploy); each poll stores every new record of the source once, as an event."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import PeriodicTask

from connectors.calendly.sandbox import seed
from portal.processflows import polling, services, tasks
from portal.processflows.models import Deployment, Outbox, TriggerEvent
from portal.tenancy.models import Membership
from tests.factories import every, make_credential, make_processflow


@pytest.fixture
def sandbox(monkeypatch, calendly_sandbox, settings):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    return calendly_sandbox


@pytest.fixture
def owner_membership(acme, owner) -> Membership:
    return every(Membership).get(organization=acme, user=owner)


def polling_definition(schedule, source=None) -> dict:
    return {
        "trigger": {"type": "polling", "schedule": schedule, "source": source},
        "steps": [{"name": "document", "type": "map", "mapping": {"record": "{{ trigger }}"}}],
    }


def make_polling_flow(acme, schedule, source=None, name="Every booking"):
    return make_processflow(acme, None, name=name, definition=polling_definition(schedule, source))


def deploy(acme, owner_membership, flow) -> Deployment:
    return services.deploy(acme, actor=owner_membership, processflow_id=flow.pk)


def test_deploying_schedules_an_interval_on_the_actions_queue(acme, owner_membership):
    flow = make_polling_flow(acme, {"every_seconds": 300})
    deployment = deploy(acme, owner_membership, flow)
    task = PeriodicTask.objects.get(pk=deployment.schedule_id)
    assert task.task == "portal.actions.poll"
    assert task.queue == "actions"
    assert json.loads(task.args) == [deployment.organization_id, deployment.pk]
    assert (task.interval.every, task.interval.period) == (300, "seconds")
    assert task.crontab is None
    assert task.enabled
    assert not task.one_off


def test_upgrading_gives_the_existing_schedules_their_organization(acme, owner_membership):
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    deployment = deploy(acme, owner_membership, make_polling_flow(acme, {"every_seconds": 300}))
    PeriodicTask.objects.filter(pk=deployment.schedule_id).update(args=json.dumps([deployment.pk]))
    name = "0004_poll_schedules_carry_organization"
    migration = importlib.import_module(f"portal.processflows.migrations.{name}")

    migration.add_organization(
        MigrationLoader(connection).project_state(("processflows", name)).apps, None
    )

    task = PeriodicTask.objects.get(pk=deployment.schedule_id)
    assert json.loads(task.args) == [acme.pk, deployment.pk]


def test_deploying_schedules_a_cron_expression(acme, owner_membership):
    flow = make_polling_flow(acme, {"cron": "*/15 8-18 * * mon-fri"})
    task = deploy(acme, owner_membership, flow).schedule
    assert task.interval is None
    crontab = task.crontab
    assert (
        crontab.minute,
        crontab.hour,
        crontab.day_of_month,
        crontab.month_of_year,
        crontab.day_of_week,
    ) == ("*/15", "8-18", "*", "*", "mon-fri")
    assert str(crontab.timezone) == "UTC"


def test_deploying_a_one_off_schedule_runs_it_once(acme, owner_membership):
    flow = make_polling_flow(acme, {"once": True})
    task = deploy(acme, owner_membership, flow).schedule
    assert task.one_off
    assert task.start_time is not None
    assert task.task == "portal.actions.poll"


def test_editing_the_schedule_and_redeploying_changes_it(acme, owner_membership):
    flow = make_polling_flow(acme, {"every_seconds": 300})
    first = deploy(acme, owner_membership, flow)
    services.update_processflow(
        acme,
        actor=owner_membership,
        processflow_id=flow.pk,
        definition=polling_definition({"every_seconds": 60}),
    )
    assert PeriodicTask.objects.get().interval.every == 300  # until redeployed

    second = deploy(acme, owner_membership, flow)
    task = PeriodicTask.objects.get()
    assert task.pk == second.schedule_id
    assert task.interval.every == 60
    assert json.loads(task.args) == [second.organization_id, second.pk]
    first.refresh_from_db()
    assert first.schedule is None


def test_undeploying_removes_the_schedule(acme, owner_membership):
    flow = make_polling_flow(acme, {"cron": "0 * * * *"})
    deploy(acme, owner_membership, flow)
    assert PeriodicTask.objects.filter(task="portal.actions.poll").count() == 1
    services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    assert not PeriodicTask.objects.filter(task="portal.actions.poll").exists()


def test_a_tick_without_a_source_is_one_event(acme, owner_membership):
    deployment = deploy(acme, owner_membership, make_polling_flow(acme, {"once": True}))
    assert tasks.poll(deployment.organization_id, deployment.pk) == 1
    event = every(TriggerEvent).get()
    assert event.source == TriggerEvent.Source.POLL
    assert event.event_name == "schedule"
    assert "tick" in json.loads(bytes(event.body))
    assert Outbox.objects.filter(event=event, done_at=None).exists()


def test_an_undeployed_flow_is_not_polled(acme, owner_membership):
    flow = make_polling_flow(acme, {"once": True})
    deployment = deploy(acme, owner_membership, flow)
    services.undeploy(acme, actor=owner_membership, processflow_id=flow.pk)
    assert polling.poll(deployment.organization_id, deployment.pk) == 0
    assert not every(TriggerEvent).exists()


# --- A Calendly source ---------------------------------------------------------------------


@pytest.fixture
def credential(acme):
    return make_credential(acme)


@pytest.fixture
def bookings(sandbox, acme, owner_membership, credential) -> Deployment:
    """A deployed flow polling the owner's scheduled events every minute."""
    source = {
        "application": "calendly",
        "credential": credential.pk,
        "action": "scheduled_events",
        "filters": [["count", "100"]],
    }
    flow = make_polling_flow(acme, {"every_seconds": 60}, source)
    return deploy(acme, owner_membership, flow)


def stored_uris(deployment=None) -> list[str]:
    events = every(TriggerEvent).all()
    if deployment is not None:
        events = events.filter(deployment__processflow=deployment.processflow)
    return [json.loads(bytes(e.body))["uri"] for e in events]


def test_a_poll_stores_each_record_as_an_event(bookings):
    assert polling.poll(bookings.organization_id, bookings.pk) == seed.OWNER_EVENT_COUNT
    uris = stored_uris()
    assert len(uris) == len(set(uris)) == seed.OWNER_EVENT_COUNT
    assert all("/scheduled_events/" in uri for uri in uris)
    assert set(every(TriggerEvent).values_list("event_name", flat=True)) == {"scheduled_events"}
    assert Outbox.objects.count() == seed.OWNER_EVENT_COUNT


def test_a_second_poll_stores_nothing_new(bookings):
    polling.poll(bookings.organization_id, bookings.pk)
    assert polling.poll(bookings.organization_id, bookings.pk) == 0
    assert every(TriggerEvent).count() == seed.OWNER_EVENT_COUNT


def test_a_new_booking_appears_once(sandbox, bookings):
    polling.poll(bookings.organization_id, bookings.pk)
    before = set(stored_uris())
    sandbox.fire("invitee.created")  # a new booking on the owner's calendar

    assert polling.poll(bookings.organization_id, bookings.pk) == 1
    assert polling.poll(bookings.organization_id, bookings.pk) == 0
    [new] = set(stored_uris()) - before
    assert new.startswith(f"{sandbox.url}/scheduled_events/")
    assert every(TriggerEvent).count() == seed.OWNER_EVENT_COUNT + 1


def test_redeploying_does_not_process_old_records_again(
    acme, owner_membership, credential, bookings
):
    polling.poll(bookings.organization_id, bookings.pk)
    definition = bookings.version.definition
    definition["trigger"]["schedule"] = {"every_seconds": 120}
    services.update_processflow(
        acme, actor=owner_membership, processflow_id=bookings.processflow_id, definition=definition
    )
    redeployed = deploy(acme, owner_membership, bookings.processflow)
    assert redeployed.pk != bookings.pk
    assert polling.poll(redeployed.organization_id, redeployed.pk) == 0


def test_the_cursor_records_each_poll(bookings):
    polling.poll(bookings.organization_id, bookings.pk)
    bookings.refresh_from_db()
    assert bookings.cursor["new_records"] == seed.OWNER_EVENT_COUNT
    assert bookings.cursor["records"] == seed.OWNER_EVENT_COUNT
    assert bookings.cursor["last_error"] == ""
    first = bookings.cursor["polled_at"]

    polling.poll(bookings.organization_id, bookings.pk)
    bookings.refresh_from_db()
    assert bookings.cursor["new_records"] == 0
    assert bookings.cursor["polled_at"] >= first


def test_the_cursor_records_a_failed_poll(sandbox, bookings):
    sandbox.revoke_token(seed.OWNER_TOKEN)
    assert polling.poll(bookings.organization_id, bookings.pk) == 0
    bookings.refresh_from_db()
    assert "401" in bookings.cursor["last_error"] or "token" in bookings.cursor["last_error"]
    assert bookings.cursor["new_records"] == 0
    assert not every(TriggerEvent).exists()

    sandbox.add_token(seed.OWNER_TOKEN, seed.OWNER_USER_UUID)
    assert polling.poll(bookings.organization_id, bookings.pk) == seed.OWNER_EVENT_COUNT
    bookings.refresh_from_db()
    assert bookings.cursor["last_error"] == ""


def test_a_poll_whose_credential_was_deleted_says_so(acme, bookings, credential):
    from portal.vault.models import Credential

    every(Credential).filter(pk=credential.pk).delete()
    assert polling.poll(bookings.organization_id, bookings.pk) == 0
    bookings.refresh_from_db()
    assert bookings.cursor["last_error"] == "The source's credential was deleted."
