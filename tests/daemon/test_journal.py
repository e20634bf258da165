"""The daemon's disk queue: durable appends, in-order replay, removal only after a successful apply."""

import asyncio
import errno
import json
import os

import pytest

from hydro_rules.daemon import journal as J
from hydro_rules.daemon.journal import Journal, JournalBusy, JournalFull

pytestmark = pytest.mark.anyio


def crash(j: Journal) -> None:
    """The process dies: the kernel closes its files (and so lets the directory's lock go); nothing else."""
    for fd in (j._fd, j._lock_fd):
        if fd is not None:
            os.close(fd)
    j._fd = j._lock_fd = None


def files(path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != "lock")


async def collect(j: Journal) -> list[dict]:
    seen = []

    async def apply(e):
        seen.append(e)

    await j.replay(apply)
    return seen


async def test_replays_in_order_and_empties(tmp_path):
    j = Journal(tmp_path)
    for i in range(5):
        j.append({"op": "event", "n": i})
    assert j.pending() == 5
    seen = await collect(j)
    assert [e["n"] for e in seen] == [0, 1, 2, 3, 4]
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    assert len({e["jid"] for e in seen}) == 5
    assert j.pending() == 0
    assert files(tmp_path) == []  # applied segments are deleted
    assert await collect(j) == []


async def test_a_new_journal_sees_what_is_pending(tmp_path):
    j = Journal(tmp_path)
    j.append({"op": "a"})
    j.append({"op": "b"})
    crash(j)
    again = Journal(tmp_path)
    assert again.pending() == 2
    assert [e["op"] for e in await collect(again)] == ["a", "b"]
    crash(again)
    assert Journal(tmp_path).pending() == 0


def test_one_journal_per_directory(tmp_path):
    j = Journal(tmp_path)
    with pytest.raises(JournalBusy, match="another daemon"):
        Journal(tmp_path)
    j.close()
    Journal(tmp_path).close()


async def test_a_failed_apply_keeps_that_entry_and_the_later_ones(tmp_path):
    j = Journal(tmp_path)
    for i in range(4):
        j.append({"op": "x", "n": i})
    seen = []

    async def flaky(e):
        if e["n"] == 2:
            raise ConnectionError("database down again")
        seen.append(e["n"])

    with pytest.raises(ConnectionError):
        await j.replay(flaky)
    assert seen == [0, 1]
    assert j.pending() == 2
    # and after a restart too
    crash(j)
    again = Journal(tmp_path)
    assert again.pending() == 2
    assert [e["n"] for e in await collect(again)] == [2, 3]


async def test_crash_after_apply_before_its_mark_applies_again_with_the_same_jid(tmp_path, monkeypatch):
    j = Journal(tmp_path)
    for i in range(3):
        j.append({"op": "x", "n": i})
    applied = []

    async def apply(e):
        applied.append((e["n"], e["jid"]))

    real_mark = Journal._mark

    def crash_on_second(self, seg, entry):
        if entry["n"] == 1:
            raise SystemExit("killed between the apply and its mark")
        real_mark(self, seg, entry)

    monkeypatch.setattr(Journal, "_mark", crash_on_second)
    with pytest.raises(SystemExit):
        await j.replay(apply)
    monkeypatch.setattr(Journal, "_mark", real_mark)
    crash(j)
    again = Journal(tmp_path)
    assert again.pending() == 2  # entry 1 was applied, but not marked: it comes again
    await again.replay(apply)
    assert [n for n, _ in applied] == [0, 1, 1, 2]
    assert applied[1][1] == applied[2][1]  # the same jid: the apply can tell it is a repeat


async def test_a_torn_last_line_is_dropped_and_later_appends_are_kept(tmp_path):
    j = Journal(tmp_path)
    j.append({"op": "kept"})
    seg = next(tmp_path.glob("journal-*.jsonl"))
    with open(seg, "ab") as f:
        f.write(b'{"op":"half","se')  # the crash came while an append was writing
    crash(j)
    again = Journal(tmp_path)
    assert again.pending() == 1
    again.append({"op": "after"})
    assert [e["op"] for e in await collect(again)] == ["kept", "after"]


async def test_appends_during_a_replay_are_replayed_after_the_earlier_ones(tmp_path):
    j = Journal(tmp_path)
    j.append({"op": "first"})
    j.append({"op": "second"})
    order = []

    async def apply(e):
        order.append(e["op"])
        if e["op"] == "first":
            j.append({"op": "during"})

    assert await j.replay(apply) == 3
    assert order == ["first", "second", "during"]
    assert j.pending() == 0


async def test_entries_are_json_lines_on_disk_with_their_ids(tmp_path):
    j = Journal(tmp_path)
    j.append({"op": "decision", "zone": "zn-1", "details": {"values": {"ph": 6.1}}})
    lines = next(tmp_path.glob("journal-*.jsonl")).read_bytes().splitlines()
    doc = json.loads(lines[0])
    assert doc["op"] == "decision" and doc["details"] == {"values": {"ph": 6.1}}
    assert isinstance(doc["seq"], int) and len(doc["jid"]) == 32
    with pytest.raises(ValueError):
        j.append({"op": "x", "seq": 3})


async def test_the_size_limit_refuses_with_a_clear_error_at_its_boundary(tmp_path):
    probe = Journal(tmp_path / "probe")
    probe.append({"op": "x", "pad": "a" * 50})
    one = next((tmp_path / "probe").glob("*.jsonl")).stat().st_size  # one entry's line
    j = Journal(tmp_path / "q", max_bytes=2 * one)
    j.append({"op": "x", "pad": "a" * 50})
    j.append({"op": "x", "pad": "b" * 50})  # exactly at the limit: taken
    with pytest.raises(JournalFull, match="full"):
        j.append({"op": "x", "pad": "c" * 50})
    assert j.refused == 1 and j.pending() == 2
    await collect(j)  # replayed: room again
    j.append({"op": "x", "pad": "d" * 50})
    assert j.pending() == 1


async def test_a_full_disk_refuses_the_entry_and_leaves_the_journal_readable(tmp_path, monkeypatch):
    j = Journal(tmp_path)
    j.append({"op": "before"})
    real = J._write_all

    def half_then_enospc(fd, data):
        real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(J, "_write_all", half_then_enospc)
    with pytest.raises(JournalFull, match="disk full"):
        j.append({"op": "lost"})
    monkeypatch.setattr(J, "_write_all", real)
    j.append({"op": "after"})
    crash(j)
    assert [e["op"] for e in await collect(Journal(tmp_path))] == ["before", "after"]


async def test_two_replays_at_once_apply_each_entry_once(tmp_path):
    j = Journal(tmp_path)
    for i in range(20):
        j.append({"op": "x", "n": i})
    seen = []

    async def apply(e):
        await asyncio.sleep(0)
        seen.append(e["n"])

    counts = await asyncio.gather(j.replay(apply), j.replay(apply))
    assert sorted(counts) == [0, 20] and seen == list(range(20))
