"""``cairn demo``: definitions through their whole life and traffic every analysis can use."""

from __future__ import annotations

from typing import Any

from cairn.bootstrap import Container
from cairn.demo import load


async def test_demo_loads_definitions_and_traffic_and_can_run_twice(
        container: Container) -> None:
    assert container.governance is not None and container.projections is not None
    definitions, stored = await load(container.governance, container.olap, 20_000)
    assert definitions == 11 and 19_000 <= stored <= 20_000
    await container.projections.wait_for(
        container.governance.recorder.max_notification_id() or 0)
    rows = await container.pool.fetch(
        "SELECT name, stage, level, live_version, latest_version FROM rm_definitions "
        "WHERE business_line = 'shop' ORDER BY name")
    got = {r["name"]: tuple(r)[1:] for r in rows}
    assert got["search"] == ("ONLINE", "B", "1-0-0", "2-0-0")
    assert got["share_click"][0:2] == ("DEPRECATED", "A")
    assert got["order_paid"][0:2] == ("ONLINE", "D")
    assert got["coupon_claimed"][0] == "DESIGN"
    names = {r["event"] for r in await container.olap.fetch(
        "SELECT DISTINCT event FROM events WHERE business_line = 'shop'")}
    assert names == {"app_start", "view_item", "search", "add_to_cart", "order_paid",
                     "share_click"}
    assert int(await container.olap.fetchval("SELECT count() FROM quarantine")) > 0
    assert int(await container.olap.fetchval("SELECT count() FROM identities")) > 0
    again, more = await load(container.governance, container.olap, 1_000)
    assert again == 0 and more > stored  # nothing created twice; traffic added


async def test_demo_through_a_running_service(client: Any, container: Container) -> None:
    from cairn.demo_http import load_over_http
    from tests.conftest import ADMIN_TOKEN

    base = str(client.make_url("")).rstrip("/")
    sent = await load_over_http(base, ADMIN_TOKEN, 4_000)
    assert sent == 4_000
    stages = dict(await container.pool.fetch(
        "SELECT stage, count(*) FROM rm_definitions GROUP BY stage"))
    assert stages == {"ONLINE": 8, "DEPRECATED": 1, "DESIGN": 2}
    stored = int(await container.olap.fetchval("SELECT count() FROM events"))
    quarantined = int(await container.olap.fetchval("SELECT count() FROM quarantine"))
    assert stored + quarantined == sent and quarantined > 0  # every event somewhere
    assert int(await container.olap.fetchval("SELECT count() FROM identities")) > 0
