"""The portal's gateway to the ``connectors`` library, for what needs no stored credential.

- ``declarations``: what applications declare (names, credential types, actions, events);
- ``runtime``: how the portal calls them (base URLs, timeouts, the shared rate budget and
  cache, the private-network policy), set in one place from the settings;
- ``validation``: asking an application whom a credential reaches;
- ``deliveries``: checking and naming the webhook deliveries an application sends.

Calls made with a stored credential (actions, subscriptions) open it through the vault:
``portal.vault.calls``. Nothing here names a particular application: what one needs (its
events and subscription options, the delivery headers worth keeping, where its base URL
comes from) it declares in its connector.
"""
