"""`plan`: the order changes are applied in, checked against an engine applying them."""

from __future__ import annotations

from tsunagu.core.engine import Engine
from tsunagu.core.plan import plan

CURRENT = {
    ("computed_trait", "ltv"): {"event": "buy", "agg": "sum", "property": "revenue"},
    ("segment", "a_buyers"): {"rule": {"did": "buy"}},
    ("segment", "vip"): {"rule": {"all": [{"segment": "a_buyers"}, {"computed": "ltv", "op": "gte", "value": 1}]}},
    ("segment", "b_top"): {"rule": {"segment": "vip"}},
}


def test_a_prune_deletes_readers_before_what_they_read_whatever_their_names() -> None:
    # Names in the opposite order to the reads: sorting by name would delete a_buyers
    # while vip still reads it, and the engine refuses that halfway through the apply.
    changes = plan(CURRENT, [], prune=True)
    assert [(c.action, c.name) for c in changes] == [
        ("delete", "b_top"),
        ("delete", "vip"),
        ("delete", "a_buyers"),
        ("delete", "ltv"),
    ]
    engine = Engine()
    for seq, ((kind, name), body) in enumerate(CURRENT.items(), 1):
        engine.define(kind, name, body, seq=seq, now=0)
    for c in changes:
        engine.undefine(c.kind, c.name, now=0)
    assert not engine.live.definitions
