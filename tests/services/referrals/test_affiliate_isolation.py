"""A second affiliate's key gets nothing of the first's: every operation of the referrals API, found in
its OpenAPI document (so a route added later is covered the day it lands), is called with the second
affiliate's key and the first affiliate's ids in its path.

Routes not open to affiliate keys answer 403 whatever the ids; those open to them (`/v1/me`, posting a
conversion) answer 404 for another affiliate's ids, and nothing they answer names the first affiliate's
rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from services.referrals.app import DEFINITION
from shared.bus.embedded import EmbeddedBus
from shared.web.routing import ApiRoute
from tests.services.referrals.commission_support import affiliate_world, no_background_sweep
from tests.services.referrals.support import make_affiliate, referrals_api

__all__ = ["no_background_sweep"]

_BODIES: dict[str, dict[str, Any]] = {"post": {}, "patch": {}, "put": {}}


def _open_to_affiliates() -> set[tuple[str, str]]:
    """(method, path) of the routes whose edge lets keys bound to an affiliate in."""
    return {
        (method.lower(), route.path)
        for router in DEFINITION.routers
        for route in router.routes
        if isinstance(route, ApiRoute) and route.access.affiliate_keys
        for method in route.methods or ()
    }


def _is_public(operation: dict[str, Any]) -> bool:
    return not operation.get("security")


async def test_a_second_affiliates_key_gets_403_or_404_on_every_resource_of_the_first(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        ada, bea = await make_affiliate(runtime), await make_affiliate(runtime, name="Bea")
        adas = await affiliate_world(client, runtime, ada)
        await affiliate_world(client, runtime, bea)  # Bea has rows of her own: lists are not empty
        created = await client.post(
            "/v1/keys",
            json={"scopes": ["referrals:read", "referrals:postback"], "affiliate_id": str(bea.id)},
        )
        assert created.status_code == 201, created.text
        as_bea = {"Authorization": f"Bearer {created.json()['key']}"}
        adas_key = await client.post(
            "/v1/keys", json={"scopes": ["referrals:read"], "affiliate_id": str(ada.id)}
        )
        adas["key_id"] = adas_key.json()["key_id"]

        document = (await client.get("/openapi.json")).json()
        open_to_affiliates = _open_to_affiliates()
        answers: dict[tuple[str, str], tuple[int, str]] = {}
        for template, operations in document["paths"].items():
            for method, operation in operations.items():
                if _is_public(operation):
                    continue  # the redirect, health, signed postbacks: no key, nobody's data
                parameters = re.findall(r"{(\w+)}", template)
                missing = [name for name in parameters if name not in adas]
                assert not missing, f"{method} {template}: no id of the first affiliate for {missing}"
                path = template
                for name in parameters:
                    path = path.replace(f"{{{name}}}", adas[name])
                response = await client.request(method, path, headers=as_bea, json=_BODIES.get(method))
                answers[(method, template)] = (response.status_code, response.text)

    assert len(answers) > 40, "the OpenAPI document lists the referrals API"
    for (method, template), (status, text) in answers.items():
        where = f"{method.upper()} {template}: {status} {text[:200]}"
        if (method, template) not in open_to_affiliates:
            assert status == 403, where
            continue
        if "{" in template:
            assert status == 404, where
            continue  # a problem document, which may echo the id Bea sent
        # Whatever else an open route answers (Bea's own rows, a refusal), none of Ada's rows is in it.
        for name in (
            "affiliate_id",
            "link_id",
            "click_id",
            "conversion_id",
            "commission_id",
            "payout_id",
            "code",
        ):
            assert adas[name] not in text, f"{where} names Ada's {name}"
    assert ("get", "/v1/me/conversions/{conversion_id}") in answers
