"""`record get -o -` (issue 12, item 9): the verified record goes to stdout as bytes, and
a reader that closes the pipe early ends the command quietly."""

from __future__ import annotations

import io
import os

import pytest
import typer

from emrshare.cli.commands import records


class _Stdout:
    def __init__(self, buffer: io.BufferedWriter | io.BytesIO) -> None:
        self.buffer = buffer

    def fileno(self) -> int:
        return self.buffer.fileno()


def test_the_record_reaches_stdout_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = io.BytesIO()
    monkeypatch.setattr(records.sys, "stdout", _Stdout(sink))
    data = bytes(range(256)) * 3 + b"\r\n\x00"
    assert records._to_stdout(data) == len(data)
    assert sink.getvalue() == data


def test_a_closed_pipe_ends_the_command_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -c 0`: the reader is gone
    with open(write_end, "wb") as pipe:
        monkeypatch.setattr(records.sys, "stdout", _Stdout(pipe))
        with pytest.raises(typer.Exit) as info:
            records._to_stdout(b"x" * 200_000)
        assert info.value.exit_code == 1
        pipe.write(b"later output")  # stdout now goes to /dev/null: no second error
        pipe.flush()
