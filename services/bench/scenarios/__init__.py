"""The scenarios, in the order they run in each mode. To add one: write a module with an async
`run(ctx) -> list[Figure]` and a `SCENARIO`, and list it here (later scenarios may read `ctx.facts`
left by earlier ones)."""

from services.bench.scenarios import (
    batch_upsert,
    click_redirect,
    commit_to_view,
    consumer_apply,
    contact_search,
    create_contact,
    memory,
    postback_ingest,
    relay_throughput,
    timeline_pages,
    touchpoint_to_timeline,
    track_ingest,
)
from services.bench.scenarios.base import Scenario

SCENARIOS: list[Scenario] = [
    create_contact.SCENARIO,
    track_ingest.SCENARIO,
    click_redirect.SCENARIO,
    postback_ingest.SCENARIO,
    batch_upsert.SCENARIO,
    contact_search.SCENARIO,
    timeline_pages.SCENARIO,
    commit_to_view.SCENARIO,
    touchpoint_to_timeline.SCENARIO,
    consumer_apply.SCENARIO,
    relay_throughput.SCENARIO,
    # Last: it reports what the sampler saw while the scenarios above ran their servers.
    memory.SCENARIO,
]
