"""The On-Premise agent: runs processflows deployed to it on the customer's own server.

It keeps the credentials it uses in its own encrypted store and never sends them anywhere;
it calls the portal over HTTPS (outbound only) for work and reports what it did. One
process: the work loop (``agent.work``) and the local UI (Django, ``agent.settings``).

Floors: the agent imports ``flows`` and ``connectors``, never ``portal``.
"""

from importlib import metadata

try:
    VERSION = metadata.version("connect-portal")
except metadata.PackageNotFoundError:  # run from a source tree that is not installed
    VERSION = "0.0.0"
