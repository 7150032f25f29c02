"""HTTP plumbing shared by the adapters that talk to a provider over ``requests``."""
from __future__ import annotations

import requests

from trading_app import conf


class TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Every request gets a timeout (NEXUS_PROVIDER_TIMEOUT): the SDK sets none, a hung socket would
    hold a worker until the task's hard time limit."""

    def send(self, request, **kwargs):
        limit = float(conf.get("NEXUS_PROVIDER_TIMEOUT"))
        given = kwargs.get("timeout")
        kwargs["timeout"] = limit if given is None else min(float(given) if not isinstance(given, tuple)
                                                            else max(given), limit)
        return super().send(request, **kwargs)


def with_timeouts(session: requests.Session) -> requests.Session:
    adapter = TimeoutAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
