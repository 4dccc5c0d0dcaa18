"""The beat entry of a polling deployment sends ``poll(organization_id, deployment_id)``:
the task reads the deployment through ``for_tenant``. Entries written before carried the
deployment's id only."""

import json

from django.db import migrations


def add_organization(apps, schema_editor):
    Deployment = apps.get_model("processflows", "Deployment")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    scheduled = Deployment.objects.exclude(schedule=None)
    for pk, organization_id, schedule_id in scheduled.values_list(
        "pk", "organization_id", "schedule_id"
    ):
        PeriodicTask.objects.filter(pk=schedule_id).update(args=json.dumps([organization_id, pk]))


def drop_organization(apps, schema_editor):
    Deployment = apps.get_model("processflows", "Deployment")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    scheduled = Deployment.objects.exclude(schedule=None)
    for pk, schedule_id in scheduled.values_list("pk", "schedule_id"):
        PeriodicTask.objects.filter(pk=schedule_id).update(args=json.dumps([pk]))


class Migration(migrations.Migration):
    dependencies = [
        ("processflows", "0003_rejecteddelivery_unstored"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_organization, drop_organization)]
