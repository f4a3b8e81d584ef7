"""``cairn demo``: definitions through their whole life and traffic every analysis can use."""

from __future__ import annotations

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
    assert again == 11 and more > stored  # definitions kept, traffic added
