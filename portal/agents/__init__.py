"""On-premise agents: groups, agents, registration keys, and the transport they call."""
