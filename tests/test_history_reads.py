"""The history's reads for the API on a real DuckDB file (``storage.history_reads``): the
writer goes on batching while a read runs, and pages by the engine's tokens."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mt5exec.storage import history_reads as reads
from mt5exec.storage.history import HistoryWriter
from mt5exec.v1 import common_pb2, order_pb2

Query = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]
T0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def _order(n: int) -> common_pb2.Order:
    order = common_pb2.Order(
        instance_id="i1",
        client_order_id=f"c-{n:03d}",
        order_id=n + 1,
        symbol="EURUSD",
        side=common_pb2.SIDE_BUY,
        type=common_pb2.ORDER_TYPE_MARKET,
        volume=0.01,
        status=common_pb2.ORDER_STATUS_FILLED,
    )
    order.created_time.FromNanoseconds(T0_NS + n * 1_000_000_000)
    order.updated_time.FromNanoseconds(T0_NS + n * 1_000_000_000 + 1000)
    return order


def test_the_writer_goes_on_while_a_read_runs(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.duckdb", flush_interval_ms=20) as writer:
        writer.record_order(_order(0))
        assert writer.flush(timeout=30)
        inside, release = threading.Event(), threading.Event()

        def slow(query: Query) -> list[tuple[Any, ...]]:
            rows = query("SELECT client_order_id FROM orders", [])
            inside.set()
            release.wait(60)  # the read holds the read cursor until told
            return rows

        result: list[list[tuple[Any, ...]]] = []
        reader = threading.Thread(target=lambda: result.append(writer.read(slow)))
        reader.start()
        try:
            assert inside.wait(30)
            for n in range(1, 50):
                writer.record_order(_order(n))
            # Written and committed while the read is still inside.
            assert writer.flush(timeout=30)
            assert reader.is_alive()
        finally:
            release.set()
            reader.join(30)
        assert result == [[("c-000",)]]
        assert writer.read(lambda q: q("SELECT count(*) FROM orders", [])) == [(50,)]


def test_pages_of_the_history_with_the_engines_tokens(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.duckdb") as writer:
        for n in range(25):
            writer.record_order(_order(n))
        assert writer.flush(timeout=30)
        seen: list[str] = []
        token = ""
        while True:
            request = order_pb2.ListOrdersRequest(
                instance_id="i1", history=True, page_size=10, page_token=token
            )
            page = writer.read(lambda q, r=request: reads.list_orders(q, r, 0, True))
            seen += [o.client_order_id for o in page.orders]
            token = page.next_page_token
            if not token:
                break
        assert seen == [f"c-{n:03d}" for n in reversed(range(25))]
        # Not finished orders: none of these.
        working = order_pb2.ListOrdersRequest(instance_id="i1", history=True)
        assert not writer.read(lambda q: reads.list_orders(q, working, 0, False)).orders
        # Created before the instance (an earlier instance of the id): not its.
        later = T0_NS + 20 * 1_000_000_000
        page = writer.read(lambda q: reads.list_orders(q, working, later, True))
        assert [o.client_order_id for o in page.orders] == [
            f"c-{n:03d}" for n in (24, 23, 22, 21, 20)
        ]
