"""The designer deploys to the Cloud agent or to an agent group: for a group, credentials
are the names its agents report, offered as you type, and saving checks them."""

from __future__ import annotations

from portal.processflows.models import Processflow
from tests.factories import every
from tests.processflows.test_pages import form_data

NEW = "/o/acme/processflows/new/"


class _Named:
    """form_data() takes a credential; on an agent it is a name."""

    def __init__(self, name: str):
        self.pk = name


def agent_form(group, name: str = "main", **overrides) -> dict:
    return form_data(_Named(name), agent_group=str(group.pk), **overrides)


def test_choosing_an_agent_group_offers_the_credential_names_its_agents_report(login, cast, plant):
    response = login(cast["member"]).post(NEW, agent_form(plant.agent.group, op="refresh"))
    html = response.content.decode()
    assert f'<option value="{plant.agent.group.pk}" selected>' in html
    assert '<input type="text" name="t-credential" id="t-credential" value="main"' in html
    assert '<option value="main">main</option>' in html


def test_saving_for_an_agent_group_makes_a_flow_meant_for_it(login, cast, plant):
    response = login(cast["member"]).post(NEW, agent_form(plant.agent.group))
    assert response.status_code == 302
    flow = every(Processflow).get()
    assert flow.agent_group == plant.agent.group
    definition = flow.versions.first().definition
    assert definition["trigger"]["credential"] == "main"
    assert definition["steps"][0]["credential"] == "main"


def test_a_name_the_group_lacks_is_refused_on_the_trigger_saying_where_to_add_it(
    login, cast, plant
):
    response = login(cast["member"]).post(NEW, agent_form(plant.agent.group, name="sales"))
    assert response.status_code == 400
    [error] = response.context["errors"]
    assert error["where"] == "trigger"
    assert error["message"] == (
        "Agent group 'Plant A' has no Calendly credential named 'sales'; add it in the "
        "agent's App Configurations panel."
    )
    assert not every(Processflow).exists()


def test_test_step_explains_that_an_agents_credential_stays_on_the_agent(login, cast, plant):
    response = login(cast["member"]).post(NEW, agent_form(plant.agent.group, op="test-0"))
    assert "credentials stay on its agents" in response.content.decode()
