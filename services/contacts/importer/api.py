"""The contacts API as the importer uses it: property definitions, and batches sent to the upsert.

A batch is sent with an `Idempotency-Key`, so a retry after a lost answer gets the first answer back
instead of applying the batch twice. Connection errors, 5xx, 429 and "still running" (409) are retried
with backoff (`Retry-After` when the server gives one); any other refusal ends the import.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx

UPSERT = "/v1/contacts/batch/upsert"
PROPERTIES = "/v1/properties"
ATTEMPTS = 6
_RETRIED = frozenset({409, 429, 500, 502, 503, 504})


class ImportRefused(Exception):
    """The server refused the import as a whole (a bad key, a body it does not take, an outage)."""


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    if isinstance(body, dict):
        return f"{response.status_code} {body.get('title', '')}: {body.get('detail', '')}".rstrip(": ")
    return f"{response.status_code} {response.text[:200]}"


class ContactsApi:
    """A client of one contacts service: `url` is the service (`http://host:8001`) or an embedded
    server it is mounted in (`http://127.0.0.1:8000`, found under `/contacts`)."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout_s: float = 120,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}", "User-Agent": "crm-contacts-import"},
            timeout=timeout_s,
            transport=transport,
        )
        self.sleep = sleep
        self._located = False

    def close(self) -> None:
        self.client.close()

    def _locate(self) -> None:
        """Find the service under the URL given: an unknown path is a 404 before any key is checked,
        so a 404 here means the URL is the embedded server, with contacts one level down."""
        if self._located:
            return
        probe = self._send("GET", PROPERTIES, params={"limit": 1})
        if probe.status_code == 404:
            base = self.client.base_url
            self.client.base_url = base.copy_with(path=base.path.rstrip("/") + "/contacts")
            if self._send("GET", PROPERTIES, params={"limit": 1}).status_code == 404:
                raise ImportRefused(f"no contacts service at {base} nor at {self.client.base_url}")
        self._located = True

    def property_types(self) -> dict[str, str] | None:
        """Each contact property's type by key; None when the key may not read them (no contacts:read)."""
        self._locate()
        types: dict[str, str] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"object_type": "contact", "limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = self._send("GET", PROPERTIES, params=params)
            if response.status_code == 403:
                return None
            if response.status_code != 200:
                raise ImportRefused(f"reading the contact properties: {_problem(response)}")
            page = response.json()
            types |= {item["key"]: item["type"] for item in page["items"]}
            cursor = page.get("next_cursor")
            if not cursor:
                return types

    def upsert(self, records: Sequence[dict[str, Any]], *, dry_run: bool) -> list[dict[str, Any]]:
        """The batch's result per record, in order."""
        self._locate()
        response = self._send(
            "POST",
            UPSERT,
            params={"dry_run": "true"} if dry_run else None,
            json={"records": list(records)},
            headers={"Idempotency-Key": f"import-{uuid.uuid4()}"},
        )
        if response.status_code != 200:
            raise ImportRefused(f"the batch upsert refused a batch: {_problem(response)}")
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        delay = 0.5
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS
            try:
                response = self.client.request(method, path, **options)
            except httpx.TransportError as exc:
                if last:
                    raise ImportRefused(f"{self.client.base_url}: {exc or type(exc).__name__}") from exc
            else:
                if response.status_code not in _RETRIED or last:
                    return response
                delay = _retry_after(response, delay)
            self.sleep(delay)
            delay = min(delay * 2, 30)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, min(float(value), 60.0))
    except ValueError:
        return default
