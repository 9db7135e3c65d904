"""The referrals acceptance scenario: an affiliate tracker seen only through the public HTTP API of real
processes, `crm dev` (embedded) and `crm serve referrals` on PostgreSQL and Kafka.

An admin sets up a program (10 % of a sale, 500 per lead, no hold) and two partners with links. A
thousand fresh browsers follow the links (a few of them crawlers), and the tracker then reports 60
transactions as JSON and as GET postbacks, each three times (retries, some fired at once), some refunded
before their sale was reported. After the approval sweep and a payout to each partner, some paid
conversions are refunded: their commissions are clawed back, and the next payout deducts the clawbacks,
or is refused while they exceed what it would pay. The result: one conversion per transaction, credited
to the partner whose link was followed, the commissions the rules say, reversals and clawbacks on the
ledger, balances that add up, and a reason and an explanation for every conversion that credits no one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.bench.kafka_positions import commit_at_start
from services.registry import SERVICES
from shared.testing.access import KeyProbe
from shared.testing.apps import ADMIN_HEADERS, TEST_BOOTSTRAP_KEY
from shared.testing.distributed import distributed_env
from shared.testing.processes import CrmProcess, free_port
from tests.conftest import Launcher

T = TypeVar("T")

DEADLINE_S = 60
CLICKS = 1000
BOT_EVERY = 50  # every 50th browser is a crawler: 20 bot clicks
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BOT_UAS = (
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
LEAD_AMOUNT = 500
TOPIC = "crm.referrals"

# The processes' settings. Defaults, but for two:
# - The fraud check on a conversion seconds after its click is off: the tracker reports each conversion
#   moments after its click, which that check would rightly hold for review. The burst check stays on:
#   every browser comes from its own address (`X-Forwarded-For`, which uvicorn takes from 127.0.0.1).
# - The background approval sweep is off, so that the scenario's own `approve-due` is what approves,
#   and its count can be asserted.
REFERRALS_ENV = {
    "CRM_REFERRALS_FRAUD_MIN_CLICK_TO_CONVERSION_S": "0",
    "CRM_REFERRALS_APPROVAL_SWEEP_SECONDS": "0",
}


@dataclass
class Tx:
    """One transaction the tracker reports, and what the CRM should make of it."""

    txid: str
    names: dict[str, str]  # click_id, code or customer_id
    event: str = "sale"
    amount: int | None = None
    affiliate: str | None = None  # "a" or "b": the partner credited
    reason: str | None = None  # why no one is credited
    rule: str = "last_click"  # the attribution's rule
    out_of_order: bool = False  # the refund arrives before the sale
    refund: str | None = None  # "before_approval" or "after_payout"
    at_once: bool = False  # the three copies are fired at once
    phase: int = 1
    answers: list[tuple[str, httpx.Response]] = field(default_factory=list)
    conversion: dict[str, Any] = field(default_factory=dict)  # as GET /v1/conversions lists it

    @property
    def commission(self) -> int | None:
        """What the rules pay: none for an unattributed or refunded-first conversion."""
        if self.affiliate is None or self.out_of_order:
            return None
        if self.event == "lead":
            return LEAD_AMOUNT
        assert self.amount is not None
        return (self.amount + 5) // 10  # 10 %, rounded half up


def _json(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json()


async def _until(observe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Poll until `done` holds for what `observe` saw; on the deadline, fail saying what was seen."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        seen = await observe()
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}; last seen: {seen!r}"[:2000])
        await asyncio.sleep(0.1)


async def _all_pages(client: httpx.AsyncClient, url: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, str] = {"limit": "200", **params}
        if cursor is not None:
            query["cursor"] = cursor
        page = _json(await client.get(url, params=query), 200)
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


class Scenario:
    def __init__(
        self, base: str, admin: httpx.AsyncClient, tracker: httpx.AsyncClient, browsers: httpx.AsyncClient
    ) -> None:
        self.base = base
        self.admin = admin
        self.tracker = tracker  # no key of its own: each postback carries the tracker's
        self.browsers = browsers
        self.run = uuid.uuid4().hex[:8]
        self.affiliates: dict[str, str] = {}
        self.links: dict[str, dict[str, Any]] = {}  # link code -> link
        self.postback_key = ""
        self.affiliate_keys: dict[str, str] = {}

    async def setup(self) -> None:
        program = _json(
            await self.admin.post(
                f"{self.base}/v1/programs",
                json={
                    "key": f"partners-{self.run}",
                    "name": "Partners",
                    "currency": "EUR",
                    "hold_days": 0,  # approved by the first sweep
                    "commission_rules": [
                        {"goal": "sale", "type": "percent", "percent": "10"},
                        {"goal": "lead", "type": "fixed", "amount": LEAD_AMOUNT},
                    ],
                },
            ),
            201,
        )
        self.program = program
        for name in ("a", "b"):
            affiliate = _json(
                await self.admin.post(
                    f"{self.base}/v1/affiliates",
                    json={
                        "kind": "partner",
                        "name": f"Partner {name.upper()}",
                        "email": f"{name}.{self.run}@example.com",
                    },
                ),
                201,
            )
            self.affiliates[name] = affiliate["id"]
        # Partner A has two links, partner B one.
        for name, suffix in (("a", "1"), ("a", "2"), ("b", "1")):
            link = _json(
                await self.admin.post(
                    f"{self.base}/v1/links",
                    json={
                        "program_id": program["id"],
                        "affiliate_id": self.affiliates[name],
                        "code": f"{name}{suffix}-{self.run}",
                        "destination_url": "https://shop.example.com/pricing?plan=pro",
                        "utm_source": f"partner-{name}",
                    },
                ),
                201,
            )
            self.links[link["code"]] = {**link, "partner": name}
        self.postback_key = _json(
            await self.admin.post(
                f"{self.base}/v1/keys", json={"name": "tracker", "scopes": ["referrals:postback"]}
            ),
            201,
        )["key"]
        for name, affiliate_id in self.affiliates.items():
            self.affiliate_keys[name] = _json(
                await self.admin.post(
                    f"{self.base}/v1/affiliates/{affiliate_id}/keys", json={"scopes": ["referrals:read"]}
                ),
                201,
            )["key"]
        probe = KeyProbe(self.admin, {"referrals": self.base})
        for token in (self.postback_key, *self.affiliate_keys.values()):
            await probe.until(token, accepted=True, timeout_s=DEADLINE_S)

    # -- clicks ---------------------------------------------------------------------------------------

    async def click(self, number: int, code: str, user_agent: str) -> str:
        # A fresh browser: no cookies sent (the client's jar refuses every cookie), its own address.
        response = await self.browsers.get(
            f"{self.base}/r/{code}",
            headers={
                "User-Agent": user_agent,
                "X-Forwarded-For": f"198.18.{number // 250}.{number % 250 + 1}",
                "Referer": "https://blog.example.org/best-tools",
            },
        )
        assert response.status_code == 302, response.text
        location = urlsplit(response.headers["location"])
        assert (location.scheme, location.netloc, location.path) == ("https", "shop.example.com", "/pricing")
        query = parse_qs(location.query)
        assert query["plan"] == ["pro"]
        assert query["utm_source"] == [f"partner-{self.links[code]['partner']}"]
        [click_id] = query["crm_click_id"]
        return click_id

    async def clicks(self) -> tuple[dict[str, str], dict[str, str]]:
        """A thousand browsers follow the three links in turn; returns the human and the bot clicks
        (click id -> link code)."""
        codes = list(self.links)
        gate = asyncio.Semaphore(24)
        humans: dict[str, str] = {}
        bots: dict[str, str] = {}

        async def one(number: int) -> None:
            code = codes[number % len(codes)]
            bot = number % BOT_EVERY == BOT_EVERY - 1
            agent = BOT_UAS[number % len(BOT_UAS)] if bot else BROWSER_UA
            async with gate:
                click_id = await self.click(number, code, agent)
            (bots if bot else humans)[click_id] = code

        await asyncio.gather(*(one(number) for number in range(CLICKS)))
        assert len(humans) + len(bots) == CLICKS, "click ids are unique"
        assert len(bots) == CLICKS // BOT_EVERY
        return humans, bots

    # -- postbacks ------------------------------------------------------------------------------------

    async def postback(self, tx: Tx, status: str, method: str, *, with_amount: bool = True) -> httpx.Response:
        fields: dict[str, str] = {
            **tx.names,
            "transaction_id": tx.txid,
            "event": tx.event,
            "status": status,
            "program": self.program["key"],
        }
        if tx.amount is not None and with_amount:
            fields["amount"] = str(tx.amount)
        if method == "GET":
            # A tracker that can only fire a URL: the key in the query, its own name for the id.
            fields["txid"] = fields.pop("transaction_id")
            response = await self.tracker.get(
                f"{self.base}/v1/postbacks", params={**fields, "key": self.postback_key}
            )
        else:
            body: dict[str, Any] = dict(fields)
            if "amount" in body:
                body["amount"] = int(body["amount"])
            response = await self.tracker.post(
                f"{self.base}/v1/postbacks",
                json=body,
                headers={"Authorization": f"Bearer {self.postback_key}"},
            )
        tx.answers.append((status, response))
        return response

    async def report(self, tx: Tx, number: int) -> None:
        """The tracker's three copies of each postback, by JSON and by GET in turn."""
        methods = itertools.cycle(("POST", "GET") if number % 2 else ("GET", "POST"))
        statuses = ("refunded", "pending") if tx.out_of_order else ("pending",)
        for status in statuses:
            copies = [next(methods) for _ in range(3)]
            if tx.at_once:
                await asyncio.gather(*(self.postback(tx, status, method) for method in copies))
            else:
                for method in copies:
                    # The refund reported first knows no amount; the sale fills it in.
                    await self.postback(tx, status, method, with_amount=status != "refunded")

    async def report_all(self, transactions: list[Tx]) -> None:
        gate = asyncio.Semaphore(8)

        async def one(number: int, tx: Tx) -> None:
            async with gate:
                await self.report(tx, number)

        await asyncio.gather(*(one(number, tx) for number, tx in enumerate(transactions)))

    async def refund(self, tx: Tx) -> None:
        """A refund of a reported sale, and the tracker's retry of it."""
        first = _json(await self.postback(tx, "refunded", "POST"), 200)
        assert (first["outcome"], first["duplicate"]) == ("status_changed", False)
        again = _json(await self.postback(tx, "refunded", "GET"), 200)
        assert (again["outcome"], again["duplicate"]) == ("duplicate", True)
        assert again["conversion"]["status"] == "refunded"

    # -- money ----------------------------------------------------------------------------------------

    async def approve_due(self) -> int:
        approved: int = _json(await self.admin.post(f"{self.base}/v1/commissions/approve-due"), 200)[
            "approved"
        ]
        return approved

    async def pay(self, partner: str, *statuses: int) -> httpx.Response:
        response = await self.admin.post(
            f"{self.base}/v1/payouts",
            json={"affiliate_id": self.affiliates[partner], "reference": f"SEPA-{self.run}-{partner}"},
            headers={"Idempotency-Key": f"payout-{self.run}-{partner}-{uuid.uuid4().hex[:6]}"},
        )
        assert response.status_code in statuses, response.text
        return response

    async def balance(self, partner: str) -> dict[str, Any]:
        found = _json(
            await self.admin.get(f"{self.base}/v1/affiliates/{self.affiliates[partner]}/balance"), 200
        )
        [eur] = found["currencies"]
        return dict(eur)


def _transactions(run: str, humans: dict[str, str], bots: dict[str, str], links: dict[str, Any]) -> list[Tx]:
    """60 transactions of every kind the tracker reports."""
    partner_of = {code: link["partner"] for code, link in links.items()}
    human_ids = iter(sorted(humans))
    transactions: list[Tx] = []
    # 36 naming a real click: every fourth a lead, the rest sales of different amounts; every third
    # one's copies fired at once.
    for number in range(36):
        click_id = next(human_ids)
        lead = number % 4 == 3
        transactions.append(
            Tx(
                txid=f"order-{run}-{number:02d}",
                names={"click_id": click_id},
                event="lead" if lead else "sale",
                amount=None if lead else 1995 + 137 * number,
                affiliate=partner_of[humans[click_id]],
                at_once=number % 3 == 0,
            )
        )
    # Six of them (three leads, three sales) are refunded before the sale or lead is reported (out of
    # order): recorded as refunded, they earn nothing, not even the lead's fixed amount.
    for tx in transactions[3:36:6]:
        tx.out_of_order, tx.at_once = True, False
    clicked = [tx for tx in transactions if not tx.out_of_order and tx.event == "sale"]
    # Refunded before their commission was approved (reversed, no clawback), and after it was paid.
    for tx in clicked[:4]:
        tx.refund = "before_approval"
    for partner, count in (("a", 3), ("b", 2)):
        for tx in [tx for tx in clicked[4:] if tx.affiliate == partner][:count]:
            tx.refund = "after_payout"
    # Six unknown click ids, five bots' clicks, six referral codes, three unknown codes, four customers
    # no one referred.
    for number in range(6):
        transactions.append(
            Tx(
                txid=f"lost-{run}-{number}",
                names={"click_id": f"unknown{run}{number}"},
                amount=3000,
                reason="unknown_click",
                rule="none",
            )
        )
    for number, click_id in enumerate(sorted(bots)[:5]):
        transactions.append(
            Tx(txid=f"bot-{run}-{number}", names={"click_id": click_id}, amount=4000, reason="bot_click")
        )
    codes = sorted(links)
    for number in range(6):
        code = codes[number % len(codes)]
        transactions.append(
            Tx(
                txid=f"code-{run}-{number}",
                names={"code": code},
                amount=2500 + number,
                affiliate=partner_of[code],
                rule="code",
                at_once=number % 2 == 0,
            )
        )
    for number in range(3):
        transactions.append(
            Tx(
                txid=f"badcode-{run}-{number}",
                names={"code": f"nocode-{run}-{number}"},
                amount=1000,
                reason="unknown_code",
                rule="none",
            )
        )
    for number in range(4):
        transactions.append(
            Tx(
                txid=f"walkin-{run}-{number}",
                names={"customer_id": f"cus-{run}-{number}"},
                amount=1500,
                reason="no_click",
                rule="none",
            )
        )
    assert len(transactions) == 60
    return transactions


def _later_sales(run: str, humans: dict[str, str], links: dict[str, Any]) -> list[Tx]:
    """After the first payouts: four sales for partner A, and one lead for partner B, whose clawbacks
    exceed it."""
    partner_of = {code: link["partner"] for code, link in links.items()}
    unused = sorted(humans)[36:]
    a_clicks = [click for click in unused if partner_of[humans[click]] == "a"][:4]
    b_click = next(click for click in unused if partner_of[humans[click]] == "b")
    later = [
        Tx(txid=f"later-{run}-{n}", names={"click_id": c}, amount=40000 + n, affiliate="a", phase=2)
        for n, c in enumerate(a_clicks)
    ]
    later.append(
        Tx(txid=f"later-{run}-lead", names={"click_id": b_click}, event="lead", affiliate="b", phase=2)
    )
    return later


def _check_answers(tx: Tx) -> None:
    """Three copies per status: one recorded (or, for the sale after its refund, stale), two duplicates
    answering the first one's postback."""
    by_status: dict[str, list[httpx.Response]] = {}
    for status, response in tx.answers[: 6 if tx.out_of_order else 3]:
        by_status.setdefault(status, []).append(response)
    first_outcome = {"pending": "stale" if tx.out_of_order else "recorded", "refunded": "recorded"}
    conversion_ids = set()
    for status, responses in by_status.items():
        assert len(responses) == 3
        bodies = [_json(response, 200, 201) for response in responses]
        originals = [body for body in bodies if not body["duplicate"]]
        assert len(originals) == 1, (tx.txid, "one copy is taken, the retries are duplicates", bodies)
        [original] = originals
        assert original["outcome"] == first_outcome[status], (tx.txid, bodies)
        duplicates = [body for body in bodies if body["duplicate"]]
        assert [body["outcome"] for body in duplicates] == ["duplicate", "duplicate"], (tx.txid, bodies)
        assert {body["postback_id"] for body in duplicates} == {original["postback_id"]}
        for response, body in zip(responses, bodies, strict=True):
            created = body["outcome"] == "recorded" and response.request.method == "POST"
            assert response.status_code == (201 if created else 200), (tx.txid, response.text)
            conversion_ids.add(body["conversion"]["id"])
    assert len(conversion_ids) == 1, (tx.txid, conversion_ids)


async def run_scenario(base: str) -> list[Tx]:
    """Plays the scenario; returns the transactions, each with its conversion."""
    refuse_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    async with (
        httpx.AsyncClient(headers=ADMIN_HEADERS, timeout=30) as admin,
        httpx.AsyncClient(timeout=30) as tracker,
        httpx.AsyncClient(cookies=refuse_cookies, follow_redirects=False, timeout=30) as browsers,
    ):
        crm = Scenario(base, admin, tracker, browsers)
        await crm.setup()
        program_id = crm.program["id"]

        # 1. A thousand browsers follow the links; the clicks reach the database behind the redirects.
        humans, bots = await crm.clicks()
        clicks = await _until(
            lambda: _all_pages(admin, f"{base}/v1/clicks", program_id=program_id),
            lambda found: len(found) >= CLICKS,
            "the clicks never all reached GET /v1/clicks",
        )
        assert {click["id"] for click in clicks} == humans.keys() | bots.keys()
        assert {click["id"] for click in clicks if click["is_bot"]} == bots.keys()
        by_code = {link["code"]: link for link in crm.links.values()}
        for click in clicks:
            link = by_code[(humans | bots)[click["id"]]]
            assert (click["link_id"], click["affiliate_id"]) == (link["id"], crm.affiliates[link["partner"]])
        assert len({click["visitor_id"] for click in clicks}) == CLICKS, "every browser is a new visitor"
        assert len({click["ip_hash"] for click in clicks}) == CLICKS, "every browser has its own address"

        # 2. The tracker reports 60 transactions, each postback three times; some refunds come first.
        transactions = _transactions(crm.run, humans, bots, crm.links)
        await crm.report_all(transactions)
        for tx in transactions:
            _check_answers(tx)
        for tx in transactions:
            if tx.refund == "before_approval":
                await crm.refund(tx)

        # 3. The sweep approves every commission still pending (no hold); each partner is paid.
        earning = [tx for tx in transactions if tx.commission is not None]
        assert await crm.approve_due() == len([tx for tx in earning if tx.refund != "before_approval"])
        first_payouts: dict[str, dict[str, Any]] = {}
        for partner in ("a", "b"):
            owed = [
                tx.commission or 0
                for tx in earning
                if tx.affiliate == partner and tx.refund != "before_approval"
            ]
            payout = _json(await crm.pay(partner, 201), 201)
            assert (payout["commissions_amount"], payout["clawbacks_amount"], payout["amount"]) == (
                sum(owed),
                0,
                sum(owed),
            )
            assert payout["commission_count"] == len(owed)
            first_payouts[partner] = payout
            # Nothing is left to pay.
            await crm.pay(partner, 409)

        # 4. Some paid sales are refunded: their commissions are clawed back.
        clawbacks = Counter[str]()
        for tx in transactions:
            if tx.refund == "after_payout":
                await crm.refund(tx)
                clawbacks[tx.affiliate or ""] += tx.commission or 0

        # 5. New sales are approved; A's next payout deducts A's clawbacks, B's lead does not cover B's.
        later = _later_sales(crm.run, humans, crm.links)
        await crm.report_all(later)
        for tx in later:
            _check_answers(tx)
        assert await crm.approve_due() == len(later)
        a_new = sum(tx.commission or 0 for tx in later if tx.affiliate == "a")
        b_new = sum(tx.commission or 0 for tx in later if tx.affiliate == "b")
        assert a_new > clawbacks["a"]
        assert b_new < clawbacks["b"]
        second = _json(await crm.pay("a", 201), 201)
        assert (second["commissions_amount"], second["clawbacks_amount"], second["amount"]) == (
            a_new,
            clawbacks["a"],
            a_new - clawbacks["a"],
        )
        refused = await crm.pay("b", 409)
        assert refused.headers["content-type"].startswith("application/problem+json")

        everything = transactions + later
        await _check_conversions(crm, everything)
        await _check_commissions(crm, everything, first_payouts, second)
        await _check_attribution(crm, everything)
        await _check_partners(crm, humans, everything, clawbacks, b_new)
        return everything


async def _check_conversions(crm: Scenario, everything: list[Tx]) -> None:
    conversions = await _all_pages(crm.admin, f"{crm.base}/v1/conversions", program_id=crm.program["id"])
    assert len(conversions) == len(everything), "exactly one conversion per transaction"
    by_tx = {conversion["transaction_id"]: conversion for conversion in conversions}
    assert by_tx.keys() == {tx.txid for tx in everything}
    for tx in everything:
        conversion = by_tx[tx.txid]
        expected_affiliate = crm.affiliates[tx.affiliate] if tx.affiliate else None
        assert (conversion["affiliate_id"], conversion["attributed"], conversion["unattributed_reason"]) == (
            expected_affiliate,
            tx.affiliate is not None,
            tx.reason,
        ), tx.txid
        refunded = tx.out_of_order or tx.refund is not None
        assert conversion["status"] == ("refunded" if refunded else "pending"), tx.txid
        assert (conversion["goal"], conversion["amount"]) == (tx.event, tx.amount), tx.txid
        assert (conversion["review"], conversion["fraud_flags"]) == ("none", []), tx.txid
        if tx.rule == "last_click":
            assert conversion["click_id"] == (tx.names["click_id"] if tx.affiliate else None), tx.txid
        tx.conversion = conversion
        # Every postback is kept with what it did.
        detail = _json(await crm.admin.get(f"{crm.base}/v1/conversions/{conversion['id']}"), 200)
        outcomes = Counter(postback["outcome"] for postback in detail["postbacks"])
        expected = Counter({"recorded": 1, "duplicate": 4 if tx.out_of_order else 2})
        if tx.out_of_order:
            expected["stale"] = 1
        if tx.refund:
            expected.update({"status_changed": 1, "duplicate": 1})
        assert outcomes == expected, (tx.txid, detail["postbacks"])
        assert {postback["method"] for postback in detail["postbacks"]} == {"GET", "POST"}


async def _check_commissions(
    crm: Scenario, everything: list[Tx], first: dict[str, dict[str, Any]], second: dict[str, Any]
) -> None:
    commissions = await _all_pages(crm.admin, f"{crm.base}/v1/commissions", program_id=crm.program["id"])
    by_conversion: dict[str, list[dict[str, Any]]] = {}
    for commission in commissions:
        by_conversion.setdefault(commission["conversion_id"], []).append(commission)
    earning = [tx for tx in everything if tx.commission is not None]
    assert len(commissions) == len(earning), "one commission per earning conversion, none for the rest"
    for tx in everything:
        conversion = tx.conversion
        if tx.commission is None:
            assert conversion["id"] not in by_conversion, tx.txid
            continue
        [commission] = by_conversion[conversion["id"]]
        assert commission["kind"] == "commission"
        assert commission["affiliate_id"] == crm.affiliates[tx.affiliate or ""]
        assert commission["amount"] == tx.commission, tx.txid
        assert commission["rule"] == ("lead:fixed:500" if tx.event == "lead" else "sale:percent:10"), tx.txid
        detail = _json(await crm.admin.get(f"{crm.base}/v1/commissions/{commission['id']}"), 200)
        ledger = [(entry["entry"], entry["amount"]) for entry in detail["ledger"]]
        amount = tx.commission
        if tx.refund == "before_approval":
            assert (commission["status"], ledger) == ("reversed", [("earned", amount), ("reversed", -amount)])
        elif tx.refund == "after_payout":
            deducted = tx.affiliate == "a"
            assert commission["status"] == "reversed"
            assert ledger == [
                ("earned", amount),
                ("approved", 0),
                ("paid", 0),
                ("clawback", -amount),
                *([("deducted", 0)] if deducted else []),
            ], tx.txid
            assert detail["ledger"][2]["payout_id"] == first[tx.affiliate or ""]["id"]
            assert detail["ledger"][3]["reason"] == "refunded"
            if deducted:
                assert detail["ledger"][4]["payout_id"] == second["id"]
        elif tx.phase == 2 and tx.affiliate == "b":
            assert (commission["status"], ledger) == ("approved", [("earned", amount), ("approved", 0)])
        else:
            payout = second if tx.phase == 2 else first[tx.affiliate or ""]
            assert (commission["status"], commission["payout_id"]) == ("paid", payout["id"]), tx.txid
            assert ledger == [("earned", amount), ("approved", 0), ("paid", 0)], tx.txid


async def _check_attribution(crm: Scenario, everything: list[Tx]) -> None:
    for tx in everything:
        conversion = tx.conversion
        explained = _json(
            await crm.admin.get(f"{crm.base}/v1/conversions/{conversion['id']}/attribution"), 200
        )
        assert (explained["rule"], explained["reason"]) == (tx.rule, tx.reason), (tx.txid, explained)
        assert explained["named_click_id"] == tx.names.get("click_id")
        assert explained["code"] == tx.names.get("code")
        assert explained["customer_id"] == tx.names.get("customer_id")
        if "click_id" in tx.names and tx.reason != "unknown_click":
            # A known click: the window, and the visitor's one click, in it.
            window = explained["window"]
            assert window["days"] == 30
            [candidate] = explained["candidates"]
            assert candidate["click_id"] == tx.names["click_id"]
            assert candidate["in_window"] is True
            assert candidate["is_bot"] is (tx.reason == "bot_click")
        else:
            assert (explained["window"], explained["candidates"]) == (None, []), tx.txid
        if tx.affiliate is None:
            assert explained["winner"] is None, tx.txid
        else:
            winner = explained["winner"]
            assert winner["affiliate_id"] == crm.affiliates[tx.affiliate]
            assert winner["click_id"] == tx.names.get("click_id")
            assert winner["link_id"] == conversion["link_id"]
    reasons = Counter(tx.reason for tx in everything if tx.reason)
    assert reasons == {"unknown_click": 6, "bot_click": 5, "unknown_code": 3, "no_click": 4}


async def _check_partners(
    crm: Scenario, humans: dict[str, str], everything: list[Tx], clawbacks: Counter[str], b_new: int
) -> None:
    for partner in ("a", "b"):
        mine = [tx for tx in everything if tx.affiliate == partner]
        paid = sum(
            tx.commission or 0 for tx in mine if tx.refund is None and not (tx.phase == 2 and partner == "b")
        )
        balance = await crm.balance(partner)
        assert balance == {
            "currency": "EUR",
            "pending": 0,
            "approved": b_new if partner == "b" else 0,
            "paid": paid,
            "clawbacks_owed": clawbacks["b"] if partner == "b" else 0,
        }, partner
        # Its own numbers: clicks without the bots', its conversions, its earnings not reversed.
        key = {"Authorization": f"Bearer {crm.affiliate_keys[partner]}"}
        stats = _json(await crm.admin.get(f"{crm.base}/v1/me/stats", headers=key), 200)
        own_links = {code for code, link in crm.links.items() if link["partner"] == partner}
        assert stats["clicks"] == sum(1 for code in humans.values() if code in own_links)
        assert stats["conversions"] == len(mine)
        earned = sum(tx.commission or 0 for tx in mine if tx.refund is None)
        assert [(e["currency"], e["amount"]) for e in stats["earnings"]] == [("EUR", earned)]
        own_clicks = _json(
            await crm.admin.get(f"{crm.base}/v1/me/clicks", params={"limit": 200}, headers=key), 200
        )
        assert {click["link_id"] for click in own_clicks["items"]} <= {
            crm.links[code]["id"] for code in own_links
        }


# -- the two deployments ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_referrals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`crm dev` with the scenario's settings (REFERRALS_ENV): the referrals service's root URL."""
    folder: Path = tmp_path_factory.mktemp("embedded")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with CrmProcess(
        ["dev", "--port", str(port), "--data-dir", str(folder / "var")],
        env={"CRM_BOOTSTRAP_API_KEY": TEST_BOOTSTRAP_KEY, **REFERRALS_ENV},
        log_path=folder / "dev.log",
        health_url=f"{base}/healthz",
    ):
        yield f"{base}/referrals"


@pytest.mark.e2e
def test_the_affiliate_tracker_embedded(embedded_referrals: str) -> None:
    asyncio.run(run_scenario(embedded_referrals))


@pytest.fixture(scope="module")
def distributed_referrals(
    postgres_url: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    launch_for_module: Launcher,
) -> str:
    # A new deployment: its groups read the topics from the start, not from positions an earlier
    # deployment committed on the same broker (keys are announced on crm.access).
    for spec in SERVICES["referrals"].consumers:
        asyncio.run(commit_at_start(kafka_bootstrap, spec.name, spec.topic_names))
    env = distributed_env(postgres_url, kafka_bootstrap, tmp_path_factory.mktemp("data"))
    return launch_for_module({**env, **REFERRALS_ENV}, "referrals")["referrals"]


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
def test_the_affiliate_tracker_distributed(distributed_referrals: str, kafka_bootstrap: str) -> None:
    everything = asyncio.run(run_scenario(distributed_referrals))
    # The relay publishes what happened to one paid and refunded sale on crm.referrals, in order (its
    # conversion's and its commission's events share the conversion id as their key).
    tx = next(
        tx for tx in everything if tx.refund == "after_payout" and tx.affiliate == "a" and not tx.at_once
    )
    conversion_id = tx.conversion["id"]
    expected = [
        "crm.conversion.recorded",
        "crm.commission.created",
        "crm.conversion.duplicate",
        "crm.conversion.duplicate",
        "crm.commission.approved",
        "crm.commission.paid",
        "crm.conversion.status_changed",
        "crm.commission.reversed",
        "crm.conversion.duplicate",
    ]
    events = asyncio.run(_events_of(kafka_bootstrap, conversion_id, len(expected)))
    assert [kind for kind, _ in events] == expected
    reversed_event = events[expected.index("crm.commission.reversed")][1]
    assert (reversed_event["clawback"], reversed_event["reason"]) == (True, "refunded")


async def _events_of(bootstrap: str, key: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The first `count` records keyed `key` on crm.referrals: each one's type and data."""
    # No group: every partition, from the start.
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        found: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    if record.key is not None and record.key.decode() == key:
                        headers = {name: value.decode() for name, value in record.headers}
                        found.append((headers["ce_type"], json.loads(record.value or b"{}")))
        return found
    finally:
        await consumer.stop()
