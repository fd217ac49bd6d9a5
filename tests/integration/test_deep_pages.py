"""A page deep in a long list (offset >= projections.reads.DEFERRED_JOIN_OFFSET, 500) is read as its ids first,
then those rows: the same page, in the same order, as reading it in one query, on both stores."""

from __future__ import annotations

import pytest

from projections import reads
from tests.support.world import ADMIN, World

THRESHOLD = 40  # lowered from DEFERRED_JOIN_OFFSET so a short list reaches the deep path
COUNT = THRESHOLD + 30


def test_a_deep_page_is_the_page_one_query_would_read(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "DEFERRED_JOIN_OFFSET", THRESHOLD)
    for n in range(COUNT):
        world.service.create("event", {"data": {"name": f"ev{n:04d}", "state": "ACTIVE"}}, ADMIN)
    reader = world.service.reader
    table = reads.TABLES["event"]
    by_name = [reads._json_text(table, "name").desc()]  # noqa: SLF001 - the filters' own JSON accessor
    deep = THRESHOLD + 5
    pages = {
        "newest first": reader.page("event", limit=20, offset=deep),
        "by name": reader.page("event", limit=20, offset=deep, order=by_name),
        "last, short": reader.page("event", limit=20, offset=COUNT - 7),
        "shallow": reader.page("event", limit=5, offset=0),
    }
    monkeypatch.setattr(reads, "DEFERRED_JOIN_OFFSET", 10**9)  # the one-query path
    assert reader.page("event", limit=20, offset=deep).as_dict() == pages["newest first"].as_dict()
    assert reader.page("event", limit=20, offset=deep, order=by_name).as_dict() == pages["by name"].as_dict()
    assert reader.page("event", limit=20, offset=COUNT - 7).as_dict() == pages["last, short"].as_dict()
    names = [e["data"]["name"] for e in pages["by name"].results]
    assert names == [f"ev{n:04d}" for n in range(COUNT - 1 - deep, COUNT - 1 - deep - 20, -1)]
    assert reader.page("event", limit=5, offset=0).as_dict() == pages["shallow"].as_dict()
    assert len(pages["last, short"].results) == 7 and pages["last, short"].total == COUNT
