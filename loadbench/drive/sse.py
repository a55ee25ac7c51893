"""Incremental Server-Sent Events framing at the bytes level (no I/O)."""

from __future__ import annotations

DONE = b"[DONE]"


class SSEDecoder:
    """Feed network chunks, get back the `data` payloads of complete events.

    Handles events split across chunks, several events per chunk, CRLF or LF line ends,
    comment/keep-alive lines (":..."), multi-line data (joined with "\\n") and fields other
    than `data` (ignored).  A payload is returned as bytes exactly as sent (e.g. b"[DONE]").
    """

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        events: list[bytes] = []
        start = 0
        n = len(buf)
        while start < n:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl  # strip \r
            if end == start:
                # Blank line: dispatch the event collected so far.
                if self._data:
                    events.append(self._data[0] if len(self._data) == 1 else b"\n".join(self._data))
                    self._data = []
            elif buf.startswith(b"data:", start):
                value_start = start + 5
                if value_start < end and buf[value_start] == 32:  # one optional space
                    value_start += 1
                self._data.append(buf[value_start:end])
            # Other fields (event:, id:, retry:) and comments (":ping") carry nothing we use.
            start = nl + 1
        self._buf = buf[start:] if start < n else b""
        return events

    def close(self) -> list[bytes]:
        """End of stream: an event not terminated by a blank line is still dispatched
        (many servers omit the final blank line after `data: [DONE]`)."""
        events: list[bytes] = []
        if self._buf:
            rest, self._buf = self._buf, b""
            events = self.feed(rest + b"\n\n")
        elif self._data:
            events = self.feed(b"\n")
        return events

    @property
    def pending_bytes(self) -> int:
        return len(self._buf) + sum(len(d) for d in self._data)
