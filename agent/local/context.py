"""What every page of the local UI shows: the agent's name and where it reports."""

from agent.local.models import Registration


def agent(request) -> dict:
    return {"registration": Registration.objects.first()}
