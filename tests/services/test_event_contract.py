"""The event contract of the whole product: valid AsyncAPI 3.0, committed and current, served by every
service, and `ce_dataschema` on a real record resolves to the schema that validates its data.

The document is checked against the official AsyncAPI 3.0.0 JSON Schema from the `@asyncapi/specs` npm
package, at a pinned version whose sha512 is checked on every use; it is fetched once and kept in
`.infra/` (which git ignores).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import pytest
from typer.testing import CliRunner

from services import asyncapi as contract
from services.cli import app as cli
from services.registry import SERVICES
from shared.bus.embedded import EmbeddedBus
from shared.bus.reading import read_to_end
from shared.events import topics
from shared.events.asyncapi import drift, event_schemas, render, resolve_dataschema, service_document
from shared.events.catalog import ContactCreated
from shared.events.envelope import from_record, to_message
from shared.runtime import ServiceRuntime
from shared.settings import PlatformSettings
from shared.testing.apps import service_client
from shared.testing.infra import REPOSITORY
from shared.web.app import create_service_app

DOCS = REPOSITORY / "docs"

SPECS_VERSION = "6.11.1"
SPECS_INTEGRITY = (
    "sha512-A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ=="
)
SPECS_MEMBER = "package/schemas/3.0.0-without-$id.json"
SPECS_CACHE = REPOSITORY / ".infra" / "asyncapi-specs" / f"specs-{SPECS_VERSION}.tgz"


def _verified(tarball: bytes) -> bytes:
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != SPECS_INTEGRITY:
        raise AssertionError(
            f"@asyncapi/specs {SPECS_VERSION}: integrity {digest}, expected {SPECS_INTEGRITY}"
        )
    return tarball


def _download_specs() -> bytes:
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    url = f"{registry}/@asyncapi/specs/-/specs-{SPECS_VERSION}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        tarball: bytes = response.read()
    return _verified(tarball)


@pytest.fixture(scope="session")
def asyncapi_schema() -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema (Draft 7, the variant without `$id`, whose `$ref`s all
    point inside it)."""
    if SPECS_CACHE.is_file():
        tarball = _verified(SPECS_CACHE.read_bytes())
    else:
        tarball = _download_specs()
        SPECS_CACHE.parent.mkdir(parents=True, exist_ok=True)
        partial = SPECS_CACHE.with_suffix(".partial")
        partial.write_bytes(tarball)
        partial.replace(SPECS_CACHE)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        member = archive.extractfile(SPECS_MEMBER)
        assert member is not None, f"{SPECS_MEMBER} missing from @asyncapi/specs {SPECS_VERSION}"
        schema: dict[str, Any] = json.load(member)
    assert schema["properties"]["asyncapi"]["const"] == "3.0.0"
    return schema


def _errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{error.json_path}: {error.message[:300]}" for error in validator.iter_errors(document)]


def test_the_committed_contract_is_current() -> None:
    problem = drift(DOCS, contract.files())
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def test_the_committed_document_and_each_services_part_are_valid_asyncapi_3(
    asyncapi_schema: dict[str, Any],
) -> None:
    committed = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))
    assert _errors(asyncapi_schema, committed) == []
    for definition in SERVICES.values():
        assert _errors(asyncapi_schema, service_document(definition)) == [], definition.name


def test_a_broken_document_fails_validation(asyncapi_schema: dict[str, Any]) -> None:
    """The validation above can fail: without this, a schema that accepts anything would pass it."""
    without_info = contract.document()
    del without_info["info"]
    assert any("'info' is a required property" in error for error in _errors(asyncapi_schema, without_info))

    without_action = contract.document()
    operation = next(iter(without_action["operations"].values()))
    del operation["action"]
    assert _errors(asyncapi_schema, without_action)


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference
    node: Any = document
    for part in reference[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves_and_operations_send_their_channels_messages() -> None:
    """What the AsyncAPI JSON Schema cannot check: that `$ref`s point somewhere, and that an operation's
    messages are its channel's (a rule of AsyncAPI 3.0)."""
    for document in (contract.document(), *(service_document(d) for d in SERVICES.values())):
        for reference in _references(document):
            _resolve(document, reference)
        for name, operation in document["operations"].items():
            channel = operation["channel"]["$ref"]
            for message in operation["messages"]:
                assert message["$ref"].startswith(f"{channel}/messages/"), name


def test_senders_are_services_and_every_consumer_is_a_receiver() -> None:
    operations = contract.document()["operations"]
    for topic in topics.ALL:
        assert topic.producers, f"{topic.name} names no producer"
        for producer in topic.producers:
            assert producer in SERVICES, f"{topic.name}: no service named {producer}"
            assert f"{producer}.send.{topic.name}" in operations
    for definition in SERVICES.values():
        for spec in definition.consumers:
            for topic in spec.topics:
                receive = operations[f"{definition.name}.receive.{topic.name}"]
                assert spec.name in receive["bindings"]["kafka"]["groupId"]["enum"]
                assert f"{definition.name}.send.{topic.dead_letter}" in operations


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_every_service_serves_its_part_and_every_schema_without_a_key(
    service: str, tmp_path: Path
) -> None:
    definition = SERVICES[service]
    settings = definition.settings_class(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'service.sqlite'}",
        run_relay=False,
        run_consumers=False,
    )
    bus = EmbeddedBus(tmp_path / "events.sqlite", poll_interval_s=0.05)
    await bus.start()
    runtime = ServiceRuntime(
        definition, platform=PlatformSettings(data_dir=tmp_path), settings=settings, bus=bus
    )
    app = create_service_app(definition, runtime)
    try:
        async with (
            app.router.lifespan_context(app),
            # A client with no Authorization header: the contract is public.
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
        ):
            response = await client.get("/asyncapi.json")
            assert response.status_code == 200, response.text
            assert response.json() == service_document(definition)

            for path, schema in event_schemas().items():
                served = await client.get(f"/schemas/{path}")
                assert served.status_code == 200, served.text
                assert served.headers["content-type"] == "application/schema+json"
                assert served.json() == schema

            missing = await client.get("/schemas/events/crm.contact.created/v999.json")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
    finally:
        await bus.stop()


async def test_ce_dataschema_of_a_published_event_resolves_to_a_schema_its_data_meets(
    local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    await local_bus.ensure_topics(topics.CONTACTS.bus_topics())
    event = ContactCreated(
        contact_id=uuid.uuid4(), lifecycle_stage="lead", source="webinar", created_at=datetime.now(UTC)
    )
    await local_bus.publish([to_message(event, source="/crm/contacts")])
    records = [
        record
        async for _, batch in read_to_end(local_bus, [topics.CONTACTS.name], group_prefix="test.contract")
        for record in batch
    ]
    assert len(records) == 1
    record = records[0]
    assert from_record(record).event == event

    uri = record.headers["ce_dataschema"].decode()
    async with service_client(
        SERVICES["journeys"],
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journeys.sqlite'}",
        bus=local_bus,
        data_dir=tmp_path,
        relay=False,
        consumers=False,
    ) as (client, _runtime):
        response = await client.get(f"/schemas/{resolve_dataschema(uri)}")
    assert response.status_code == 200, response.text
    schema = response.json()
    assert schema["$id"] == uri
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(json.loads(record.value))
    # The committed file is the same schema, so a reader without a running service can use it.
    assert json.loads((DOCS / resolve_dataschema(uri)).read_text()) == schema


def test_crm_asyncapi_writes_the_contract_and_checks_it(tmp_path: Path) -> None:
    output = tmp_path / "docs" / "asyncapi.json"
    older = tmp_path / "docs" / "events" / "crm.contact.created" / "v0.json"
    older.parent.mkdir(parents=True)
    older.write_text("{}\n")
    runner = CliRunner()

    written = runner.invoke(cli, ["asyncapi", "--output", str(output)])
    assert written.exit_code == 0, written.output
    assert output.read_text() == render(contract.document())
    assert older.read_text() == "{}\n", "older versions' files are never removed"
    assert runner.invoke(cli, ["asyncapi", "--output", str(output), "--check"]).exit_code == 0

    output.write_text(output.read_text().replace('"3.0.0"', '"3.0.1"'))
    checked = runner.invoke(cli, ["asyncapi", "--output", str(output), "--check"])
    assert checked.exit_code == 1
    assert f"{output} (differs)" in checked.stderr
    assert f"crm asyncapi --output {output}" in checked.stderr
