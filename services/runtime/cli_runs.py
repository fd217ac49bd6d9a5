"""``dart logs ACTION_ID [-f]`` and ``dart cancel INSTANCE_ID``: run control from a terminal, over the REST API
of a running dart (issue 15)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from services.runtime.demo import DemoError, RestClient


def logs_command(client: RestClient, action_id: str, follow: bool, out: Any = None) -> int:
    """Print the action's engine output; with ``follow``, keep printing until the action has ended."""
    out = out or sys.stdout
    if not follow:
        offset = 0
        while True:
            chunk = client.call("GET", f"/action/{action_id}/logs", params={"offset": offset})
            out.write(chunk["text"])
            if chunk["next_offset"] == offset:
                break
            offset = chunk["next_offset"]
        out.flush()
        return 0
    url = f"{client.api_url}/action/{urllib.parse.quote(action_id)}/logs?follow=true"
    request = urllib.request.Request(url, headers={"Authorization": client.auth})
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            while True:
                block = response.read1(65536)
                if not block:
                    break
                out.write(block.decode("utf-8", errors="replace"))
                out.flush()
    except urllib.error.HTTPError as exc:
        raise DemoError(f"GET logs: HTTP {exc.code}: {exc.read().decode(errors='replace')[:500]}") from None
    return 0


def cancel_command(client: RestClient, instance_id: str, reason: str | None) -> int:
    body = {"reason": reason} if reason else None
    done = client.call("POST", f"/workflow/instance/{instance_id}/cancel", body, whole=True)
    what = "was already cancelled" if done.get("already_cancelled") else "cancelled"
    print(f"workflow instance {instance_id} {what}: {done.get('error_message')}; "
          f"actions stopped: {', '.join(done.get('cancelled_actions') or []) or 'none'}")
    return 0
