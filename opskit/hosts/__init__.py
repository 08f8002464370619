"""Who we talk to and how: inventory -> HostSpec -> Transport (local or SSH) -> results."""
