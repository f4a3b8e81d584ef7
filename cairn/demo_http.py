"""``cairn demo`` against a running service: the same data set through the public API.

With embedded ClickHouse only one process may open the data directory, so while ``cairn
serve`` runs the demo cannot write to the stores itself. It then does what any client would:
definitions through GraphQL mutations, traffic through ``POST /v1/track`` (so every event is
validated; identify events create the identity links; a few invalid ones end in quarantine).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from cairn.demo import DEFINITIONS, OWNER, Demo, Step, plan
from cairn.errors import CairnError

BATCH = 1000


class DemoClient:
    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self._http = http
        self._base = base
        self._token = token

    async def gql(self, query: str, **variables: Any) -> Any:
        async with self._http.post(f"{self._base}/graphql", json={
                "query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self._token}"}) as resp:
            body = await resp.json()
        errors = body.get("errors")
        if errors and errors[0].get("extensions", {}).get("code") != "CONFLICT":
            raise CairnError(f"demo: {errors[0]['message']}")
        return body.get("data")

    async def define(self, line: str, demo: Demo) -> None:
        made = await self.gql("""mutation($i: RequestDefinitionInput!) {
            requestDefinition(input: $i) { id } }""", i={
            "businessLine": line, "name": demo.name, "owner": OWNER,
            "description": f"Demo event {demo.name}", "requirement": f"DEMO-{demo.name}"})
        if not made:
            return  # loaded before
        ident = made["requestDefinition"]["id"]
        for step in plan(demo):
            query, variables = _mutation(step)
            await self.gql(query, i=ident, **variables)

    async def track(self, key: str, batch: list[dict[str, Any]]) -> None:
        async with self._http.post(f"{self._base}/v1/track", json={"batch": batch},
                                   headers={"Authorization": f"Bearer {key}"}) as resp:
            if resp.status != 202:
                raise CairnError(f"demo: /v1/track answered {resp.status}: {await resp.text()}")


# GraphQL types of the demo steps' arguments (see cairn.demo.plan).
_ARG_TYPES = {"properties": "[PropertySpecInput!]!", "note": "String", "passed": "Boolean!",
              "report": "JSON", "reason": "String!", "replaced_by": "ID",
              "level": "GovernanceLevel!"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _mutation(step: Step) -> tuple[str, dict[str, Any]]:
    """The step as a GraphQL mutation and its variables (``$i`` is the definition id)."""
    args = {k: v for k, v in step.args.items() if v is not None}
    if "properties" in args:
        args["properties"] = [{"name": p.name, "type": p.type.value, "required": p.required,
                               "enumValues": list(p.enum_values) if p.enum_values else None}
                              for p in args["properties"]]
    params = "".join(f", ${_camel(k)}: {_ARG_TYPES[k]}" for k in args)
    call = ", ".join(["id: $i", *(f"{_camel(k)}: ${_camel(k)}" for k in args)])
    return (f"mutation($i: ID!{params}) {{ {_camel(step.command)}({call}) {{ id }} }}",
            {_camel(k): v for k, v in args.items()})


def _props(name: str, rnd: random.Random) -> dict[str, Any]:
    item = f"i{rnd.randrange(500)}"
    options: dict[str, dict[str, Any]] = {
            "view_item": {"item_id": item, "price": rnd.randrange(300) + 0.99},
            "search": {"query": rnd.choice(["shoes", "phone", "tea", "lamp", "bag"])},
            "add_to_cart": {"item_id": item, "quantity": 1 + rnd.randrange(3)},
            "order_paid": {"amount": round(5 + rnd.random() * 400, 2),
                           "currency": rnd.choice(["CNY", "USD", "EUR"])},
            "share_click": {"channel": rnd.choice(["wechat", "link"])},
            "flight_search": {"origin": rnd.choice(["PEK", "SHA", "CAN"]),
                              "destination": rnd.choice(["NRT", "SIN", "LHR", "JFK"])},
            "booking_paid": {"amount": 200 + rnd.randrange(2000)}}
    return options.get(name, {})


def sessions(line: str, demos: tuple[Demo, ...], events: int, days: int,
             seed: int) -> list[dict[str, Any]]:
    """Sessions of eight events a few seconds apart, as the in-engine generator makes."""
    rnd = random.Random(seed)
    picks = [d for d in demos if d.weight]
    weights = [d.weight for d in picks]
    persons = max(100, events // 60)
    now = time.time()
    out: list[dict[str, Any]] = []
    while len(out) < events:
        p = rnd.randrange(persons)
        anon, user = f"{line}-a{p}", f"{line}-u{p}" if p % 3 else ""
        start = now - rnd.random() * (days * 86400 - 400)
        session = f"{line}-s{len(out)}"
        for i in range(8):
            name = "app_start" if i == 0 else rnd.choices(picks, weights)[0].name
            event: dict[str, Any] = {"event": name, "anonymous_id": anon, "session_id": session,
                                     "timestamp": int((start + i * 40) * 1000),
                                     "platform": rnd.choice(["ios", "android", "web"]),
                                     "properties": _props(name, rnd)}
            if user:
                event["user_id"] = user
            out.append(event)
        if user and rnd.random() < 0.1:
            out.append({"event": "identify", "anonymous_id": anon, "user_id": user})
        if rnd.random() < 0.01:  # a little invalid traffic for the quarantine
            out.append({"event": "order_paid", "anonymous_id": anon,
                        "properties": {"amount": "twelve"}})
    return out[:events]


async def load_over_http(base: str, token: str, events: int, days: int = 28) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        client = DemoClient(http, base, token)
        sent = 0
        for n, (line, demos) in enumerate(DEFINITIONS.items()):
            await client.gql("""mutation($l: String!) { defineGlobalProperties(businessLine: $l,
                properties: [{name: "channel", type: STRING}]) }""", l=line)
            for demo in demos:
                await client.define(line, demo)
            key = (await client.gql("""mutation($l: String!) { createWriteKey(
                businessLine: $l, label: "demo") }""", l=line))["createWriteKey"]
            share = events * 3 // 4 if n == 0 else events // 4
            traffic = sessions(line, demos, share, days, seed=n)
            batches = [traffic[i:i + BATCH] for i in range(0, len(traffic), BATCH)]
            slots = asyncio.Semaphore(4)

            async def post(batch: list[dict[str, Any]], key: str = key,
                           slots: asyncio.Semaphore = slots) -> None:
                async with slots:
                    await client.track(key, batch)

            await asyncio.gather(*(post(b) for b in batches))
            sent += len(traffic)
        return sent
