"""Record framing, specified once in docs/formats.md ("Common framing"), checked against each
implementation with the same vectors (tests/data/framing.txt): the engine writes the order
journal and the execution logs (rust_core/src/journal.rs: rust_core/tests/framing.rs checks it
against these vectors), the history reads the execution logs (storage/log_tail.py, here), and
the sim worker's state uses the same layout with little-endian integers (sim/state/codec.py,
here)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from mt5exec.sim.state import codec
from mt5exec.storage.log_tail import LogTail
from mt5exec.v1 import common_pb2

VECTORS = Path(__file__).parents[1] / "data" / "framing.txt"


def vectors() -> list[tuple[bytes, bytes]]:
    """(payload, record) of each line."""
    rows = []
    for line in VECTORS.read_text().splitlines():
        if line and not line.startswith("#"):
            payload, record = line.split()
            rows.append((bytes.fromhex(payload), bytes.fromhex(record)))
    return rows


def test_the_vectors_are_the_spec() -> None:
    """docs/formats.md: u32 big-endian length, u32 big-endian CRC-32 of the payload, payload.
    Lengths past 255 tell the byte order apart."""
    rows = vectors()
    assert len(rows) >= 3 and max(len(p) for p, _ in rows) > 255
    for payload, record in rows:
        length, crc = struct.unpack(">II", record[:8])
        assert (length, crc, record[8:]) == (len(payload), zlib.crc32(payload), payload)


def _log(root: Path) -> Path:
    directory = root / "owner" / "a"
    directory.mkdir(parents=True)
    return directory / "executions.log"


def _sequences(got: list[bytes]) -> list[int]:
    return [common_pb2.ExecutionEvent.FromString(raw).sequence for raw in got]


def test_the_execution_log_tail_reads_the_records(tmp_path: Path) -> None:
    rows = vectors()
    log = _log(tmp_path)
    log.write_bytes(b"".join(record for _, record in rows))
    got: list[bytes] = []
    tail = LogTail(tmp_path, lambda raw: got.append(raw) is None)
    assert tail.poll() == len(rows)
    assert got == [payload for payload, _ in rows]


def test_the_execution_log_tail_stops_at_a_record_cut_short(tmp_path: Path) -> None:
    """A record still being written (cut short) is not read; once whole, it is."""
    rows = vectors()
    whole = b"".join(record for _, record in rows)
    log = _log(tmp_path)
    log.write_bytes(whole[: len(whole) - 10])
    got: list[bytes] = []
    tail = LogTail(tmp_path, lambda raw: got.append(raw) is None)
    assert tail.poll() == len(rows) - 1
    with open(log, "ab") as f:
        f.write(whole[len(whole) - 10 :])
    assert tail.poll() == 1
    assert _sequences(got) == [1, 2, 3]


def _little_endian(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


@pytest.mark.parametrize("index", range(3))
def test_the_sim_state_frames_alike_in_little_endian(index: int) -> None:
    """docs/formats.md ("The simulated broker's state"): the same layout, integers
    little-endian."""
    payload, record = vectors()[index]
    assert codec._frame(payload) == _little_endian(payload)
    assert codec._frame(payload)[8:] == record[8:]


def test_the_sim_state_reads_the_records_and_stops_at_a_torn_one() -> None:
    rows = vectors()
    data = b"".join(_little_endian(payload) for payload, _ in rows)
    assert [p for _, _, p in codec._scan(data, 0)] == [payload for payload, _ in rows]
    records = codec._scan(data[:-10], 0)
    read = [next(records)[2] for _ in rows[:-1]]
    assert read == [payload for payload, _ in rows[:-1]]
    with pytest.raises(codec._Bad) as bad:
        next(records)
    assert bad.value.torn
