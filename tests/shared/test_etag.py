"""Reading `If-None-Match` and `If-Match` as RFC 9110 says: weak comparison for one, strong for the other."""

from __future__ import annotations

import pytest

from shared.web.etag import if_match, not_modified


@pytest.mark.parametrize("header", ['"3"', 'W/"3"', '"1", "3"', ' "1" ,W/"3" ', "*"])
def test_if_none_match_naming_the_current_tag_is_a_304_with_it(header: str) -> None:
    response = not_modified(header, '"3"')
    assert response is not None
    assert (response.status_code, response.headers["etag"], response.body) == (304, '"3"', b"")


@pytest.mark.parametrize("header", [None, '"2"', '"2", W/"4"', "3", '"3', ""])
def test_if_none_match_not_naming_it_reads_on(header: str | None) -> None:
    assert not_modified(header, '"3"') is None


def test_if_match_gives_the_tags_as_sent_or_no_condition() -> None:
    assert if_match(None) is None
    assert if_match("*") is None
    assert if_match('"3"') == frozenset({'"3"'})
    assert if_match('"1", W/"3"') == frozenset({'"1"', 'W/"3"'})  # the weak one never equals a strong tag
    assert if_match("not a tag") == frozenset()  # matches nothing: a 412, not a write without a condition
