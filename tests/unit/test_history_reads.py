"""The history's reads for the API on a real DuckDB file (``storage.history_reads``): the
writer goes on batching while a read runs, and pages by the engine's tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from mt5exec.storage import history_process
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


def _page(
    writer: HistoryWriter, request: order_pb2.ListOrdersRequest, since_ns: int, finished: bool
) -> order_pb2.ListOrdersResponse:
    answer = writer.read(lambda q: reads.list_orders(q, request, since_ns, finished))
    return order_pb2.ListOrdersResponse.FromString(answer)


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
            page = _page(writer, request, 0, True)
            seen += [o.client_order_id for o in page.orders]
            token = page.next_page_token
            if not token:
                break
        assert seen == [f"c-{n:03d}" for n in reversed(range(25))]
        # Not finished orders: none of these.
        working = order_pb2.ListOrdersRequest(instance_id="i1", history=True)
        assert not _page(writer, working, 0, False).orders
        # Created before the instance (an earlier instance of the id): not its.
        later = T0_NS + 20 * 1_000_000_000
        page = _page(writer, working, later, True)
        assert [o.client_order_id for o in page.orders] == [
            f"c-{n:03d}" for n in (24, 23, 22, 21, 20)
        ]


def test_a_page_is_the_orders_as_recorded_also_rows_written_before_v7(tmp_path: Path) -> None:
    orders = [_order(n) for n in range(30)]
    for order in orders[::3]:  # fields the columns hold, none left out
        order.comment, order.stop_loss, order.reject_reason = "c", 1.05, "WHY"
        order.expiration.FromNanoseconds(T0_NS + 7 * 86_400 * 1_000_000_000)
    with HistoryWriter(tmp_path / "h.duckdb") as writer:
        for order in orders:
            writer.record_order(order)
        assert writer.flush(timeout=30)
        assert writer.read(lambda q: q("SELECT count(encoded) FROM orders", [])) == [(30,)]
        # Rows a v6 writer left (no encoded Order): one in two, across the pages.
        cursor = writer.cursor()
        cursor.execute("UPDATE orders SET encoded = NULL WHERE order_id % 2 = 0")
        cursor.close()
        got: list[common_pb2.Order] = []
        token = ""
        while True:
            request = order_pb2.ListOrdersRequest(
                instance_id="i1", history=True, page_size=7, page_token=token
            )
            page = _page(writer, request, 0, True)
            got += page.orders
            token = page.next_page_token
            if not token:
                break
        assert got == orders[::-1]
        for n in (3, 4):  # one with its encoded Order, one without
            one = order_pb2.GetOrderRequest(instance_id="i1", client_order_id=f"c-{n:03d}")
            assert writer.read(lambda q, r=one: reads.get_order(q, r, 0)) == orders[n]


def test_a_listing_read_again_starts_with_a_window_sized_for_its_page(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.duckdb") as writer:
        for n in range(200):
            order = _order(n)
            order.instance_id = "i-density"  # no density learned by another test's reads
            # One order an hour: the first window (5 minutes) holds none of a page.
            order.created_time.FromNanoseconds(T0_NS + n * 3_600_000_000_000)
            writer.record_order(order)
        assert writer.flush(timeout=30)
        queries: list[list[str]] = []

        def counted(query: Query) -> bytes:
            sqls: list[str] = []
            queries.append(sqls)

            def count(sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
                sqls.append(sql)
                return query(sql, params)

            request = order_pb2.ListOrdersRequest(instance_id="i-density", history=True)
            return reads.list_orders(count, request, 0, True)

        first = order_pb2.ListOrdersResponse.FromString(writer.read(counted))
        again = order_pb2.ListOrdersResponse.FromString(writer.read(counted))
        assert first == again and len(first.orders) == 100
        assert len(queries[0]) > 1
        assert len(queries[1]) == 1


def test_an_answer_is_kept_until_the_writer_commits_again(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.duckdb") as writer:
        for n in range(5):
            writer.record_order(_order(n))
        assert writer.flush(timeout=30)
        answers = reads.Answers()
        request = order_pb2.ListOrdersRequest(instance_id="i1", history=True)
        payload = reads.pack(reads.ORDERS, 0, True, request.SerializeToString())
        ran: list[str] = []

        def read() -> order_pb2.ListOrdersResponse:
            commits = dict(writer.commits)

            def counted(query: Query) -> bytes:
                def count(sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
                    ran.append(sql)
                    return query(sql, params)

                return answers.answer(count, payload, commits)

            return order_pb2.ListOrdersResponse.FromString(writer.read(counted))

        assert len(read().orders) == 5 and ran
        ran.clear()
        assert len(read().orders) == 5 and not ran  # kept: no query
        # A commit of other tables leaves it kept.
        risk = (1, "trading_state", "i1", None, "{}", None, "server", None, None, None)
        assert writer.record_row("risk_events", risk)
        assert writer.flush(timeout=30)
        assert len(read().orders) == 5 and not ran
        writer.record_order(_order(5))
        assert writer.flush(timeout=30)
        assert [o.client_order_id for o in read().orders][:2] == ["c-005", "c-004"] and ran


def test_a_listing_looks_back_no_further_than_its_instance(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.duckdb") as writer:
        for n in range(3):  # an earlier instance's orders, long before this one's creation
            writer.record_order(_order(n))
        assert writer.flush(timeout=30)
        since = time.time_ns() - 3_600_000_000_000
        sqls: list[str] = []

        def counted(query: Query) -> bytes:
            def count(sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
                sqls.append(sql)
                return query(sql, params)

            request = order_pb2.ListOrdersRequest(instance_id="i1", history=True)
            return reads.list_orders(count, request, since, True)

        assert not order_pb2.ListOrdersResponse.FromString(writer.read(counted)).orders
        # 5 minutes, 20, then the 35 left down to its creation: not on back to year 1.
        assert len(sqls) == 3


def test_a_page_token_outside_the_databases_ranges_is_refused(tmp_path: Path) -> None:
    bad = [
        "99999999999999999999.1",  # past an int64
        "9223372036854775807.1",  # int64's largest: its next µs past the database's times
        "253402300800000000.1",  # past year 9999
        "-62135596800000001.1",  # before year 1
        "1.18446744073709551616",  # past a deal id's UBIGINT
        "\uff11.1",  # a fullwidth digit: int() takes it
        "1_0.1",
        " 1.1",
        "1.-1",
        "1.",
    ]
    with HistoryWriter(tmp_path / "h.duckdb") as writer:
        for token in bad:
            requests = [
                (reads.DEALS, order_pb2.ListDealsRequest(instance_id="i1", page_token=token)),
                (
                    reads.TICKS,
                    order_pb2.ListTicksRequest(instance_id="i1", symbol="S", page_token=token),
                ),
            ]
            if token in ("99999999999999999999.1", "\uff11.1", "1_0.1", " 1.1"):
                order = order_pb2.ListOrdersRequest(instance_id="i1", page_token=token)
                requests.append((reads.ORDERS, order))
            for kind, request in requests:
                payload = reads.pack(kind, 0, True, request.SerializeToString())
                with pytest.raises(reads.BadRequest) as caught:
                    writer.read(lambda q, p=payload: reads.answer(q, p))  # type: ignore[misc]
                assert (caught.value.field, caught.value.reason) == (
                    "page_token",
                    "PAGE_TOKEN_INVALID",
                ), (kind, token)
        # The largest a read makes are taken.
        for token in ("253402300799999999.18446744073709551615", "-62135596800000000.0"):
            request = order_pb2.ListDealsRequest(instance_id="i1", page_token=token)
            payload = reads.pack(reads.DEALS, 0, True, request.SerializeToString())
            assert writer.read(lambda q, p=payload: reads.answer(q, p)) == b""  # type: ignore[misc]


def test_a_failed_read_tells_the_client_nothing_of_the_database(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.duckdb") as writer:
        writer.read(lambda q: q("DROP TABLE deals", []))
        request = order_pb2.ListDealsRequest(instance_id="i1")
        payload = reads.pack(reads.DEALS, 0, True, request.SerializeToString())
        answer = history_process._read(writer, payload, reads.Answers())
        assert answer.startswith(b"-"), answer
        assert b"deals" not in answer and b"Catalog" not in answer, answer
        answer = history_process._query(writer, b"\xff")
        assert answer.startswith(b"-") and b"Error" not in answer, answer


def test_a_deal_is_read_with_the_reason_it_was_made_for(tmp_path: Path) -> None:
    """ListDeals answers each deal's reason (a stop loss, a take profit...) as the fill
    reported it: the deals table keeps it from schema v8 on (before, always unspecified)."""
    reasons = [common_pb2.FILL_REASON_CLIENT, common_pb2.FILL_REASON_STOP_LOSS]
    with HistoryWriter(tmp_path / "h.duckdb", flush_interval_ms=20) as writer:
        for deal_id, reason in enumerate(reasons, start=1):
            event = common_pb2.ExecutionEvent(instance_id="i1", sequence=deal_id)
            event.time.FromNanoseconds(T0_NS + deal_id * 1_000_000_000)
            event.fill.CopyFrom(
                common_pb2.Fill(
                    instance_id="i1", deal_id=deal_id, symbol="EURUSD", volume=0.1, reason=reason
                )
            )
            writer.record_execution(event.SerializeToString())
        assert writer.flush(timeout=30)
        request = order_pb2.ListDealsRequest(instance_id="i1")
        deals = writer.read(lambda q: reads.list_deals(q, request, 0)).deals
    assert {d.deal_id: d.reason for d in deals} == dict(enumerate(reasons, start=1))
