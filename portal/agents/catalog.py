"""Credentials of an agent group, as definitions deployed to it name them.

On an agent the credentials stay on the customer's server: a step names one by its name
there (a string, e.g. ``"main"``), matched with the step's application. Saving a definition
checks that the group's agents report such a credential; applications asked for but missing
are remembered on the group so the agents' Settings panel can offer them.
"""

from __future__ import annotations

import flows
from flows.definition import application as connector
from portal.agents.models import AgentGroup
from portal.agents.selectors import reported_credential


class AgentGroupCredentials:
    """A :class:`flows.CredentialCatalog` over what an agent group's agents report."""

    def __init__(self, group: AgentGroup):
        self.group = group
        #: Applications a definition named that no agent of the group has yet.
        self.missing: set[str] = set()

    def find(self, ref: object) -> flows.CredentialInfo | str:
        # Without the application a name cannot be checked; the engine asks find_for.
        if not isinstance(ref, str) or not ref.strip():
            return "Type the name the credential has on the agent, e.g. main."
        return f"Agent group {self.group.name!r} needs the credential's application."

    def find_for(self, ref: object, application: str) -> flows.CredentialInfo | str:
        """The credential named ``ref`` of ``application`` on the group's agents."""
        if not isinstance(ref, str) or not ref.strip():
            return "Type the name the credential has on the agent, e.g. main."
        name = ref.strip()
        if not reported_credential(self.group, application, name):
            self.missing.add(application)
            try:
                title = connector(application).display_name
            except LookupError:
                title = application
            return (
                f"Agent group {self.group.name!r} has no {title} credential named {name!r}; "
                "add it in the agent's App Configurations panel."
            )
        return flows.CredentialInfo(name, name, application)
