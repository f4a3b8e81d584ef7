"""Definitions taken through their life by the application, for tests of other layers."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from cairn.domain.governance import Governance
from cairn.domain.properties import PropertySpec, PropertyType

AMOUNT = [PropertySpec("amount", PropertyType.NUMBER, True)]


def take_online(app: Governance, line: str, name: str,
                specs: Sequence[PropertySpec] = AMOUNT, *, owner: str = "o@x.example",
                stop_at: str | None = None) -> UUID:
    """Requested → designed → developed → tested (passing run) → ONLINE; or stop at
    ``"DESIGN"``, or go on to ``"DEPRECATED"``."""
    d = app.request_definition(business_line=line, name=name, display_name=None,
                               description=None, owner=owner, requirement=None, actor="t",
                               note=None)
    app.design_schema(d.id, list(specs), actor="t")
    if stop_at == "DESIGN":
        return d.id
    app.change(d.id, None, lambda x: x.mark_developed(actor="t", note=None))
    app.change(d.id, None, lambda x: x.record_test_run(passed=True, report=None, actor="t",
                                                       note=None))
    app.change(d.id, None, lambda x: x.mark_tested(actor="t", note=None))
    app.change(d.id, None, lambda x: x.publish(actor="t", note=None))
    if stop_at == "DEPRECATED":
        app.change(d.id, None, lambda x: x.deprecate(reason="old", replaced_by=None,
                                                     actor="t"))
    return d.id
