"""The API's reads of the history database (docs/history.md#reading-it-through-the-api).

``GetOrder`` and ``ListOrders`` answer from the engine's memory first and reach past it into
the history (the orders it forgot); ``ListDeals`` and ``ListTicks`` read the history only.
The reads run in the history child on a thread of their own (``storage.history_reads``).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc

from mt5exec.errors import MT5ExecError, invalid, quote
from mt5exec.reasons import Reason
from mt5exec.server.state import AppState
from mt5exec.services import validation
from mt5exec.storage import history_reads as reads
from mt5exec.storage.history_process import (
    HistoryProcess,
    HistoryReadRefused,
    HistoryUnavailable,
)
from mt5exec.v1 import common_pb2, order_pb2

_MAX_TICKS = reads.MAX_TICKS


def _off(what: str) -> MT5ExecError:
    return MT5ExecError(
        grpc.StatusCode.FAILED_PRECONDITION,
        Reason.HISTORY_DISABLED,
        f"{what} are kept in the history database, which is off (history.enabled)",
    )


def _export_dir(base: Path, out_dir: str) -> Path:
    """Where an export of ``out_dir`` goes: inside ``base`` (history.export_dir, made if
    missing) once symlinks and '..' are resolved, a relative ``out_dir`` taken relative to
    it; anywhere else INVALID_ARGUMENT (an admin's token must not be a way to write files
    wherever the server may, its data directory included)."""
    if "\0" in out_dir:
        raise invalid("out_dir", Reason.PATH_INVALID, "out_dir: a NUL character")
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        root = base.resolve(strict=True)
    except OSError as e:
        raise MT5ExecError(
            grpc.StatusCode.FAILED_PRECONDITION,
            Reason.EXPORT_DIR_UNUSABLE,
            f"the export directory (history.export_dir) cannot be made: {e.strerror}",
            "out_dir",
        ) from None
    try:
        target = (root / out_dir).resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
        why = e.strerror if isinstance(e, OSError) else "a symlink loop"
        raise invalid("out_dir", Reason.PATH_INVALID, f"out_dir: {quote(out_dir)}: {why}") from None
    if not target.is_relative_to(root):
        raise invalid(
            "out_dir",
            Reason.EXPORT_DIR_OUTSIDE,
            f"out_dir: {quote(out_dir)} is outside the export directory (history.export_dir)",
        )
    return target


class HistoryReads:
    def __init__(self, state: AppState) -> None:
        self._state = state

    @property
    def enabled(self) -> bool:
        return self._state.history is not None

    def _since(self, instance_id: str) -> int:
        """The instance's creation (ns): rows of an earlier instance of the id are not its."""
        instance = self._state.engine.get_instance(instance_id)
        created = instance.created_time
        return created.seconds * 1_000_000_000 + created.nanos

    async def _read(
        self, history: HistoryProcess, kind: bytes, since: int, finished: bool, request: bytes
    ) -> bytes:
        try:
            return await history.read(reads.pack(kind, since, finished, request))
        except HistoryReadRefused as e:
            raise invalid(e.field, e.reason, str(e)) from None
        except HistoryUnavailable as e:
            raise MT5ExecError(
                grpc.StatusCode.UNAVAILABLE, Reason.HISTORY_UNAVAILABLE, f"the history: {e}"
            ) from None

    async def get_order(self, request: order_pb2.GetOrderRequest) -> common_pb2.Order | None:
        """The latest order of the key in the history (None: none, or no history)."""
        history = self._state.history
        if history is None:
            return None
        since = self._since(request.instance_id)
        answer = await self._read(history, reads.ORDER, since, True, request.SerializeToString())
        return common_pb2.Order.FromString(answer) if answer else None

    async def list_orders(self, request: order_pb2.ListOrdersRequest, memory: bytes) -> bytes:
        """The engine's page (``memory``) merged with the history's orders of the same place
        in the listing: newest first, each order once (the engine's version when it still
        has it), the page token the engine's."""
        history = self._state.history
        if history is None or not request.history:
            return memory
        since = self._since(request.instance_id)
        answer = await self._read(history, reads.ORDERS, since, True, request.SerializeToString())
        page = order_pb2.ListOrdersResponse.FromString(memory)
        if not page.orders:
            return answer  # all from the history (past what the engine remembers)
        from_history = order_pb2.ListOrdersResponse.FromString(answer)
        stored = from_history.orders
        if not stored:
            return memory
        size = min(request.page_size or reads.DEFAULT_PAGE, reads.MAX_PAGE)

        def key(o: common_pb2.Order) -> tuple[str, int]:
            return (
                o.client_order_id,
                o.created_time.seconds * 1_000_000 + o.created_time.nanos // 1000,
            )

        def place(o: common_pb2.Order) -> tuple[int, str]:
            return o.created_time.seconds * 1_000_000_000 + o.created_time.nanos, o.client_order_id

        known = {key(o) for o in page.orders}
        merged = list(page.orders) + [o for o in stored if key(o) not in known]
        merged.sort(key=place, reverse=True)
        if page.next_page_token:
            # Not past the engine's page: an order it has that the history has not written
            # yet would be skipped.
            boundary = place(page.orders[-1])
            merged = [o for o in merged if place(o) >= boundary]
        more = bool(page.next_page_token or from_history.next_page_token) or len(merged) > size
        response = order_pb2.ListOrdersResponse(orders=merged[:size])
        if more:
            response.next_page_token = "{}.{}".format(*place(response.orders[-1]))
        return response.SerializeToString()

    async def list_deals(self, request: order_pb2.ListDealsRequest) -> bytes:
        history = self._state.history
        if history is None:
            raise _off("deals")
        instance_id = validation.instance_id(request.instance_id)
        for field in ("from_time", "to_time"):
            if request.HasField(field):
                validation.timestamp_nanos(field, getattr(request, field))
        return await self._read(
            history, reads.DEALS, self._since(instance_id), True, request.SerializeToString()
        )

    async def export(self, request: order_pb2.ExportHistoryRequest) -> bytes:
        history = self._state.history
        if history is None:
            raise _off("the history's tables")
        if request.format not in ("", "parquet"):
            raise invalid("format", Reason.FORMAT_UNSUPPORTED, "format: parquet only")
        for field in ("since", "until"):
            if request.HasField(field):
                validation.timestamp_nanos(field, getattr(request, field))
        out_dir = await asyncio.to_thread(
            _export_dir, self._state.config.history_export_dir, request.out_dir
        )
        confined = order_pb2.ExportHistoryRequest()
        confined.CopyFrom(request)
        confined.out_dir = str(out_dir)
        # What was recorded until now is in the files too.
        with contextlib.suppress(HistoryUnavailable):
            await history.flush()
        return await self._read(history, reads.EXPORT, 0, True, confined.SerializeToString())

    async def list_ticks(self, request: order_pb2.ListTicksRequest) -> bytes:
        history = self._state.history
        if history is None:
            raise _off("ticks")
        instance_id = validation.instance_id(request.instance_id)
        if not self._state.config.history.ticks:
            raise MT5ExecError(
                grpc.StatusCode.FAILED_PRECONDITION,
                Reason.TICKS_NOT_STORED,
                "ticks are stored only with history.ticks = true",
            )
        if not request.symbol:
            raise invalid("symbol", Reason.FIELD_REQUIRED, "symbol: required")
        if request.count > _MAX_TICKS:
            raise invalid("count", Reason.OUT_OF_RANGE, f"count: at most {_MAX_TICKS}")
        if request.count and request.page_token:
            raise invalid(
                "page_token", Reason.FIELD_NOT_APPLICABLE, "page_token: only for a time range"
            )
        for field in ("from_time", "to_time"):
            if request.HasField(field):
                validation.timestamp_nanos(field, getattr(request, field))
        # Not the ticks of an earlier instance of the id.
        since = self._since(instance_id)
        return await self._read(history, reads.TICKS, since, True, request.SerializeToString())
