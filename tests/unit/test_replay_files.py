"""`liqmon replay` over files: the readers, own batching, output and the diff's exit code."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import msgspec
import pytest

from monitor.cli import main
from monitor.errors import InputError
from monitor.replay import read_events_file, read_input_file
from monitor.schema import Fill, PriceTick, Transfer

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
INSTRUMENTS = str(REPO / "deploy" / "instruments.example.json")
DAILY = REPO / "monitor" / "data" / "prices_daily.csv"
T0 = 1_700_000_000_000


def wire(*messages: object) -> bytes:
    return b"".join(msgspec.json.encode(m) + b"\n" for m in messages)


def session() -> bytes:
    """A deposit, a long BTC position, then a fall that takes the account under."""
    return wire(
        PriceTick(symbol="BTCUSDT", mark_price=30_000.0, ts=T0),
        Transfer(transfer_id="t1", account="a1", asset="USDT", amount=1_000.0, ts=T0 + 10),
        Fill(
            fill_id="f1",
            account="a1",
            symbol="BTCUSDT",
            side="buy",
            qty=1.0,
            price=30_000.0,
            ts=T0 + 20,
        ),
        *[
            PriceTick(symbol="BTCUSDT", mark_price=30_000.0 - 100.0 * k, ts=T0 + 1_000 * k)
            for k in range(1, 15)
        ],
    )


def test_wire_lines_become_price_and_ledger_records_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(session())
    records = read_input_file(path, "prices", "fills")
    assert [r.topic for r in records[:4]] == ["prices", "fills", "fills", "prices"]
    assert [r.offset for r in records if r.topic == "fills"] == [0, 1]
    assert records[1].key == b"a1"
    assert records[0].key == b"BTCUSDT"
    assert records[2].ts == T0 + 20
    assert records[2].timestamp == -1


def test_long_csv_gives_one_tick_per_row(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        "ts,symbol,mark_price\n1700000000000,BTCUSDT,30000.5\n2023-11-14T22:13:21Z,ETHUSDT,2000\n"
    )
    ticks = [
        msgspec.json.decode(r.value or b"", type=PriceTick)
        for r in read_input_file(path, "prices", "fills")
    ]
    assert ticks == [
        PriceTick(symbol="BTCUSDT", mark_price=30_000.5, ts=1_700_000_000_000),
        PriceTick(symbol="ETHUSDT", mark_price=2_000.0, ts=1_700_000_001_000),
    ]


def test_the_bundled_daily_closes_read_as_a_wide_table() -> None:
    records = read_input_file(DAILY, "prices", "fills")
    first = [msgspec.json.decode(r.value or b"", type=PriceTick) for r in records[:2]]
    assert first == [
        PriceTick(symbol="SPX", mark_price=1268.80, ts=1_136_246_400_000),  # 2006-01-03
        PriceTick(symbol="IXIC", mark_price=2243.74, ts=1_136_246_400_000),
    ]
    assert len(records) == 2 * (len(DAILY.read_text().splitlines()) - 1)


def test_parquet_prices_read_like_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "prices.parquet"
    table = pa.table({"ts": [T0, T0 + 1], "symbol": ["BTCUSDT", "BTCUSDT"], "price": [1.5, 2.5]})
    pq.write_table(table, path)
    ticks = [
        msgspec.json.decode(r.value or b"", type=PriceTick)
        for r in read_input_file(path, "prices", "fills")
    ]
    assert [(t.mark_price, t.ts) for t in ticks] == [(1.5, T0), (2.5, T0 + 1)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"symbol": "X", "ts": 1}\n{oops\n', "bad.jsonl line 2: not a JSON message"),
        ("odd.jsonl", b'{"type": "trade", "ts": 1}\n', "type 'trade' is neither a price tick"),
        ("notime.csv", b"symbol,mark_price\nX,1\n", "notime.csv line 2: no time column"),
        ("badtime.csv", b"ts,symbol,price\nyesterday,X,1\n", "time 'yesterday' is neither"),
        ("badprice.csv", b"ts,symbol,price\n1,X,cheap\n", "prices must be numbers"),
        ("prices.xlsx", b"", "unknown input format '.xlsx'"),
        ("broken.parquet", b"not parquet", "not a readable Parquet file"),
    ],
)
def test_unreadable_input_is_one_line_naming_file_and_place(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_input_file(path, "prices", "fills")


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot read .*nowhere\.jsonl"):
        read_input_file(tmp_path / "nowhere.jsonl", "prices", "fills")


def replay_cli(*args: str) -> int:
    return main(["replay", "--instruments", INSTRUMENTS, "-q", *args])


def test_replaying_a_file_twice_writes_the_same_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(session())
    assert replay_cli("--input", str(path), "--output", str(tmp_path / "one.jsonl")) == 0
    assert replay_cli("--input", str(path), "--output", str(tmp_path / "two.jsonl")) == 0
    one = read_events_file(tmp_path / "one.jsonl")
    assert one, "the fall must put a1 in trouble"
    assert {e.account for e in one if hasattr(e, "account")} == {"a1"}
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    out = capsys.readouterr().out
    assert "own batching (100 ms of event time per cycle)" in out


def test_compare_with_an_expected_file_exits_1_on_an_altered_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(session())
    expected = tmp_path / "expected.jsonl"
    assert replay_cli("--input", str(path), "--output", str(expected)) == 0
    assert replay_cli("--input", str(path), "--compare", "--expected", str(expected)) == 0
    assert "identical" in capsys.readouterr().out.splitlines()[-1]
    lines = expected.read_text().splitlines()
    altered = json.loads(lines[0])
    altered["equity"] += 1.0
    expected.write_text("\n".join([json.dumps(altered), *lines[1:]]) + "\n")
    assert replay_cli("--input", str(path), "--compare", "--expected", str(expected)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith("0 missing, 0 extra, 1 different")
    assert any(line.startswith(f"differs  {altered['event_id']} equity:") for line in out)


def test_an_expected_file_that_is_not_events_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(session())
    expected = tmp_path / "expected.jsonl"
    expected.write_text('{"type": "margin_call"}\n')
    assert (
        main(
            [
                "replay",
                "--instruments",
                INSTRUMENTS,
                "-q",
                "--input",
                str(path),
                "--compare",
                "--expected",
                str(expected),
            ]
        )
        == 2
    )
    assert "expected.jsonl line 1: not a margin event" in capsys.readouterr().err


def test_a_progress_bar_is_drawn_on_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(session())
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    command = [
        sys.executable,
        "-m",
        "monitor",
        "replay",
        "--instruments",
        INSTRUMENTS,
        "--input",
        str(path),
    ]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=terminal) as process:
        os.close(terminal)
        screen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: the process has exited
                break
            if not chunk:
                break
            screen += chunk
        assert process.wait(timeout=120) == 0
    os.close(master)
    assert " cycles [" in screen.decode(errors="replace")


def test_start_and_end_select_whole_cycles_by_their_clock(tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(session())
    assert replay_cli("--input", str(path), "--output", str(tmp_path / "all.jsonl")) == 0
    every = read_events_file(tmp_path / "all.jsonl")
    assert len({e.detected_ts for e in every}) >= 2, "events from more than one cycle"
    cut = sorted({e.detected_ts for e in every})[1]
    assert (
        replay_cli("--input", str(path), "--start", str(cut), "--output", str(tmp_path / "s")) == 0
    )
    assert read_events_file(tmp_path / "s") == [e for e in every if e.detected_ts >= cut]
    assert replay_cli("--input", str(path), "--end", str(cut), "--output", str(tmp_path / "e")) == 0
    assert read_events_file(tmp_path / "e") == [e for e in every if e.detected_ts < cut]


def test_a_range_that_ends_before_the_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(session())
    assert replay_cli("--input", str(path), "--end", "2000-01-01T00:00:00Z") == 2
    assert "nothing to replay before --end" in capsys.readouterr().err


def test_any_ledger_message_reads_and_a_bad_one_is_left_to_the_intake(tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(
        b'{"type": "margin_settings", "settings_id": "s1", "account": "a1", "mode": "isolated",'
        b' "symbol": null, "ts": 5}\n'
        b'{"symbol": "BTCUSDT", "mark_price": 1.0, "ts": "yesterday"}\n'
    )
    records = read_input_file(path, "prices", "fills")
    assert [(r.topic, r.key, r.ts) for r in records] == [
        ("fills", b"a1", 5),
        ("prices", b"BTCUSDT", 0),
    ]
