"""`crm contacts import` without a server: the column mapping, the streamed CSV and the HTTP client."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from services.contacts.importer.api import ContactsApi, ImportRefused
from services.contacts.importer.mapping import ColumnMapping, MappingError, Record, RowProblem
from services.contacts.importer.reading import CsvProblem, CsvSource

TYPES = {"plan": "enum", "seats": "number", "beta": "bool", "modules": "multi_enum", "since": "date"}


def _record(mapping: ColumnMapping, *cells: str) -> Record:
    record = mapping.record(list(cells))
    assert isinstance(record, Record), record
    return record


def test_columns_map_to_fields_properties_and_external_ids() -> None:
    mapping = ColumnMapping.build(
        ["E-mail", "Plan", "Seats", "Beta", "Modules", "Shop", "Notes", "tags", "Properties.since"],
        [
            "E-mail=email",
            "Plan=properties.plan",
            "Seats=properties.seats",
            "Beta=properties.beta",
            "Modules=properties.modules",
            "Shop=external_ids.shop",
            "Notes=",
        ],
        TYPES,
    )
    record = _record(
        mapping,
        " ada@example.com ",
        "pro",
        "12",
        "yes",
        "crm; mail",
        "42",
        "ignored",
        "vip;;beta",
        "2024-01-02",
    )
    assert record.values == {
        "email": "ada@example.com",
        "properties": {
            "plan": "pro",
            "seats": 12,
            "beta": True,
            "modules": ["crm", "mail"],
            "since": "2024-01-02",
        },
        "external_ids": [{"system": "shop", "id": "42"}],
        "tags": ["vip", "beta"],
    }
    assert [record.column_of(f) for f in ("email", "properties.seats", "external_ids.0.id", "tags.1")] == [
        "E-mail",
        "Seats",
        "Shop",
        "tags",
    ]


def test_empty_cells_are_not_given_and_odd_values_go_as_written() -> None:
    mapping = ColumnMapping.build(
        ["email", "first_name", "properties.seats", "Beta"], ["Beta=properties.beta"], TYPES
    )
    record = _record(mapping, "a@example.com", "  ", "many", "perhaps")
    # The API's check then names the property in the row's error.
    assert record.values == {"email": "a@example.com", "properties": {"seats": "many", "beta": "perhaps"}}
    assert _record(mapping, "a@example.com").values == {"email": "a@example.com"}, "a short row is fine"


def test_several_columns_feed_one_list_and_each_item_knows_its_column() -> None:
    mapping = ColumnMapping.build(
        ["Mail", "Mail 2", "Ids"], ["Mail=emails", "Mail 2=emails", "Ids=external_ids"], {}, separator="|"
    )
    record = _record(mapping, "a@example.com|b@example.com", "c@example.com", "shop:1|stripe:cus_2")
    assert record.values["emails"] == ["a@example.com", "b@example.com", "c@example.com"]
    assert record.values["external_ids"] == [
        {"system": "shop", "id": "1"},
        {"system": "stripe", "id": "cus_2"},
    ]
    assert (record.column_of("emails.1"), record.column_of("emails.2")) == ("Mail", "Mail 2")
    assert record.column_of(None) == ""


def test_a_malformed_external_id_or_a_long_row_is_refused_before_sending() -> None:
    mapping = ColumnMapping.build(["email", "external_ids"], [], {})
    problem = mapping.record(["a@example.com", "shop:1;42"])
    assert problem == RowProblem(
        "external_ids", "external_ids", "'42': write each external id as system:id, e.g. shopify:42"
    )
    assert isinstance(mapping.record(["a@example.com", "", "surplus"]), RowProblem)


@pytest.mark.parametrize(
    ("headers", "maps", "types", "says"),
    [
        (["E-mail", "Notes"], [], {}, "no field for the columns 'E-mail', 'Notes'"),
        (["E-mail", ""], ["E-mail=email"], {}, "(column 2, unnamed)"),
        (["E-mail"], ["E-mail=mail"], {}, "mail: not a contact field"),
        (["E-mail"], ["Email=email"], {}, "the file has no column 'Email'"),
        (["E-mail"], ["E-mail"], {}, 'write it as "Column=field"'),
        (["E-mail"], ["E-mail=email", "E-mail=emails"], {}, "mapped twice"),
        (["a", "b"], ["a=email", "b=email"], {}, "more than one column maps to email"),
        (["email", "email"], [], {}, "more than once: email"),
        (["email", "Plan"], ["Plan=properties.plan"], {}, "no contact property 'plan' is defined"),
        (["email", "Plan"], ["Plan=properties.plan"], None, "needs an API key with contacts:read"),
        (["email", "Shop"], ["Shop=external_ids.Shop!"], {}, "an external system is lower-case"),
        (["Notes"], ["Notes="], {}, "nothing to import"),
    ],
)
def test_a_mapping_that_cannot_work_says_why(
    headers: list[str], maps: list[str], types: dict[str, str] | None, says: str
) -> None:
    with pytest.raises(MappingError) as refused:
        ColumnMapping.build(headers, maps, types)
    assert says in str(refused.value)


def test_unmapped_columns_may_be_left_out_and_a_column_name_may_hold_an_equals_sign() -> None:
    mapping = ColumnMapping.build(["a=b", "Notes"], ["a=b=email"], {}, ignore_unmapped=True)
    assert _record(mapping, "x@example.com", "free text").values == {"email": "x@example.com"}


def test_the_file_is_read_row_by_row_with_the_line_each_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(
        '\ufeffemail;note\r\na@example.com;"two\r\nlines"\r\n\r\n;;\r\nb@example.com;ü\r\n'.encode()
    )
    with CsvSource(path, delimiter=";") as source:
        assert source.headers == ["email", "note"]
        rows = list(source.rows())
        assert source.bytes_read == source.size
    assert [(row.line, row.cells) for row in rows] == [
        (2, ["a@example.com", "two\r\nlines"]),
        (6, ["b@example.com", "ü"]),
    ]


def test_an_unreadable_file_names_the_problem(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CsvProblem, match="empty"), CsvSource(empty):
        pass
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email\nm\xfcller@example.com\n".encode("latin-1"))
    with pytest.raises(CsvProblem, match="--encoding"), CsvSource(latin) as source:
        list(source.rows())
    with CsvSource(latin, encoding="latin-1") as source:
        assert [row.cells for row in source.rows()] == [["müller@example.com"]]


def test_a_batch_is_retried_with_the_same_idempotency_key_and_the_service_is_found_below_the_url() -> None:
    seen: list[tuple[str, str | None]] = []
    answers = iter([503, 429, 200])

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("Idempotency-Key")))
        if not request.url.path.startswith("/contacts/"):
            return httpx.Response(404, json={"title": "Not found"})
        if request.method == "GET":
            return httpx.Response(200, json={"items": [], "next_cursor": None})
        status = next(answers)
        if status != 200:
            return httpx.Response(status, headers={"Retry-After": "7"})
        assert request.url.params["dry_run"] == "true"
        records = json.loads(request.content)["records"]
        return httpx.Response(200, json={"results": [{"index": 0, "status": "created"}] * len(records)})

    waits: list[float] = []
    api = ContactsApi("http://crm.test", "key", transport=httpx.MockTransport(handle), sleep=waits.append)
    results = api.upsert([{"email": "a@example.com"}], dry_run=True)
    assert results == [{"index": 0, "status": "created"}]
    posts = [key for path, key in seen if path == "/contacts/v1/contacts/batch/upsert"]
    assert len(posts) == 3
    assert len(set(posts)) == 1, "a retry carries the key of the first try"
    assert posts[0] is not None
    assert waits == [7.0, 7.0], "as long as Retry-After says"


def test_a_refusal_other_than_an_outage_ends_the_import() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"items": [], "next_cursor": None})
        return httpx.Response(403, json={"title": "Forbidden", "detail": "needs contacts:write"})

    api = ContactsApi("http://crm.test", "key", transport=httpx.MockTransport(handle), sleep=lambda _s: None)
    with pytest.raises(ImportRefused, match="403 Forbidden: needs contacts:write"):
        api.upsert([{"email": "a@example.com"}], dry_run=False)


def test_a_key_without_read_scope_reads_no_property_types() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"title": "Forbidden"})

    api = ContactsApi("http://crm.test", "key", transport=httpx.MockTransport(handle))
    assert api.property_types() is None
