"""`crm contacts import` end to end: the command as a process, against the product as a process (`crm dev`
embedded, and `crm serve contacts` on PostgreSQL and Kafka)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.testing.apps import ADMIN_HEADERS, TEST_BOOTSTRAP_KEY
from shared.testing.distributed import distributed_env
from tests.conftest import Launcher

CRM = Path(sys.executable).with_name("crm")

PEOPLE = """E-mail,First name,Plan,Seats,Tags,Shop id,Notes
ada@example.com,Ada,pro,12,vip;beta,1,"met at the
conference"
grace@example.com,Grace,free,,,2,
not-an-email,Bob,pro,1,,3,
carol@example.com,Carol,gold,,,4,
dave@example.com,Dave,,many,,5,
"""
PEOPLE_MAP = [
    "E-mail=email",
    "First name=first_name",
    "Plan=properties.plan",
    "Seats=properties.seats",
    "Shop id=external_ids.shop",
    "Notes=",
]
# (line, column, field) of each row the file's import refuses, the header being line 1.
PEOPLE_REFUSED = [
    ("5", "E-mail", "email"),
    ("6", "Plan", "properties.plan"),
    ("7", "Seats", "properties.seats"),
]


def _import(
    url: str, path: Path, *options: str, key: str = TEST_BOOTSTRAP_KEY
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CRM), "contacts", "import", str(path), "--url", url, *options],
        env={**os.environ, "CRM_KEY": key},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _maps(*maps: str) -> list[str]:
    return [option for spec in maps for option in ("--map", spec)]


def _refused(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


class Contacts:
    """The contacts API of a running server, as the test checks it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = httpx.Client(base_url=base, headers=ADMIN_HEADERS, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code in {200, 201}, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def by_email(self, email: str) -> dict[str, Any] | None:
        filter_ = {"field": "email", "op": "eq", "value": email}
        items: list[dict[str, Any]] = self.post("/v1/contacts/search", {"filter": filter_})["items"]
        return items[0] if items else None

    def count(self) -> int:
        return int(self.post("/v1/contacts/search", {"limit": 1, "with_total": True})["total"])


def _define_properties(contacts: Contacts) -> None:
    for body in (
        {"key": "plan", "label": "Plan", "type": "enum", "options": ["free", "pro"]},
        {"key": "seats", "label": "Seats", "type": "number"},
    ):
        response = contacts.client.post("/v1/properties", json={"object_type": "contact", **body})
        assert response.status_code in {201, 409}, response.text


def check_a_dry_run_then_the_import(contacts: Contacts, url: str, folder: Path) -> None:
    """The dry run and the import answer alike; only the import writes."""
    _define_properties(contacts)
    grace = contacts.post("/v1/contacts", {"email": "grace@example.com"})
    people = folder / "people.csv"
    people.write_text(PEOPLE)
    before = contacts.count()

    dry = _import(url, people, "--dry-run", *_maps(*PEOPLE_MAP))
    assert dry.returncode == 1, dry.stderr
    assert "5 rows: 1 would be created, 1 would be updated, 0 unchanged, 3 refused" in dry.stdout
    assert "Dry run: nothing was written." in dry.stdout
    errors = folder / "people.errors.csv"
    assert f"Refused rows, with line, column, field and reason: {errors}" in dry.stdout
    dry_refused = _refused(errors)
    assert [(r["line"], r["column"], r["field"]) for r in dry_refused] == PEOPLE_REFUSED
    assert dry_refused[0]["E-mail"] == "not-an-email", (
        "a refused row keeps its cells, to fix and import again"
    )
    assert contacts.count() == before
    assert contacts.by_email("ada@example.com") is None
    unchanged = contacts.by_email("grace@example.com")
    assert unchanged is not None
    assert (unchanged["first_name"], unchanged["properties"]) == (None, {})

    errors.unlink()
    real = _import(url, people, *_maps(*PEOPLE_MAP))
    assert real.returncode == 1, real.stderr
    assert "5 rows: 1 created, 1 updated, 0 unchanged, 3 refused" in real.stdout
    assert _refused(errors) == dry_refused
    assert "Importing" in real.stderr, "the progress bar is on stderr"
    ada = contacts.by_email("ada@example.com")
    assert ada is not None
    assert (ada["first_name"], ada["tags"], ada["properties"]) == (
        "Ada",
        ["beta", "vip"],
        {"plan": "pro", "seats": 12},
    )
    assert ada["external_ids"] == [{"system": "shop", "id": "1"}]
    assert "conference" not in str(ada), "the column mapped to nothing is left out"
    updated = contacts.by_email("grace@example.com")
    assert updated is not None
    assert updated["id"] == grace["id"]
    assert (updated["first_name"], updated["properties"]) == ("Grace", {"plan": "free"})

    again = _import(url, people, *_maps(*PEOPLE_MAP))
    assert "5 rows: 0 created, 0 updated, 2 unchanged, 3 refused" in again.stdout


@pytest.mark.e2e
def test_the_import_against_the_embedded_server(embedded: str, tmp_path: Path) -> None:
    # The root URL: the command finds the service under /contacts.
    check_a_dry_run_then_the_import(Contacts(f"{embedded}/contacts"), embedded, tmp_path)


@pytest.mark.e2e
def test_an_import_that_cannot_work_stops_before_writing(embedded: str, tmp_path: Path) -> None:
    contacts = Contacts(f"{embedded}/contacts")
    _define_properties(contacts)
    path = tmp_path / "leads.csv"
    path.write_text("email,Notes,Plan\nzoe@example.com,call back,pro\n")
    before = contacts.count()

    unmapped = _import(embedded, path, *_maps("Plan=properties.plan"))
    assert unmapped.returncode == 2
    assert "no field for the columns 'Notes'" in unmapped.stderr
    unknown = _import(embedded, path, *_maps("Plan=properties.tier", "Notes="))
    assert unknown.returncode == 2
    assert "no contact property 'tier' is defined" in unknown.stderr
    bad_key = _import(embedded, path, "--ignore-unmapped", key="crm_0000000000000000_nope")
    assert (bad_key.returncode, "401" in bad_key.stderr) == (2, True), bad_key.stderr
    writer = contacts.post("/v1/keys", {"scopes": ["contacts:write"], "name": "import"})["key"]
    write_only = _import(embedded, path, *_maps("Plan=properties.plan", "Notes="), key=writer)
    assert write_only.returncode == 2
    assert "needs an API key with contacts:read" in write_only.stderr
    assert contacts.count() == before
    assert not (tmp_path / "leads.errors.csv").exists()

    done = _import(embedded, path, "--ignore-unmapped", key=writer)
    assert (done.returncode, done.stdout.splitlines()[0]) == (
        0,
        "1 rows: 1 created, 0 updated, 0 unchanged, 0 refused",
    )


@pytest.mark.e2e
def test_a_large_file_goes_in_batches_in_the_files_order(embedded: str, tmp_path: Path) -> None:
    contacts = Contacts(f"{embedded}/contacts")
    path = tmp_path / "many.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "first_name"])
        writer.writerows([f"bulk{i}@example.com", "First"] for i in range(1000))
        # Seen again in later batches: each applies after the row that created its contact.
        writer.writerows([f"bulk{i}@example.com", "Second"] for i in range(500))
    result = _import(f"{embedded}/contacts", path, "--batch-size", "400")
    assert result.returncode == 0, result.stderr
    assert "1500 rows: 1000 created, 500 updated, 0 unchanged, 0 refused" in result.stdout
    assert "1500 rows" in result.stderr, "the progress bar counts the rows"
    first, last = contacts.by_email("bulk0@example.com"), contacts.by_email("bulk999@example.com")
    assert first is not None
    assert last is not None
    assert (first["first_name"], last["first_name"]) == ("Second", "First")


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
def test_the_import_against_the_distributed_service(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path, launch: Launcher
) -> None:
    urls = launch(distributed_env(postgres_url, kafka_bootstrap, tmp_path), "contacts")
    check_a_dry_run_then_the_import(Contacts(urls["contacts"]), urls["contacts"], tmp_path)
