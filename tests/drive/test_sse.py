import pytest

from loadbench.drive.sse import SSEDecoder


def feed_all(chunks):
    d = SSEDecoder()
    out = []
    for c in chunks:
        out.extend(d.feed(c))
    out.extend(d.close())
    return out


STREAM = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize(
    "chunks, expected",
    [
        ([STREAM], [b'{"a":1}', b'{"b":2}', b"[DONE]"]),
        ([STREAM[:7], STREAM[7:20], STREAM[20:]], [b'{"a":1}', b'{"b":2}', b"[DONE]"]),
        ([bytes([b]) for b in STREAM], [b'{"a":1}', b'{"b":2}', b"[DONE]"]),
        ([b'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n'], [b'{"a":1}', b"[DONE]"]),
        ([b": keep-alive\n\n", b'data: {"a":1}\n\n', b":ping\n\n"], [b'{"a":1}']),
        ([b'event: message\nid: 4\nretry: 100\ndata: {"a":1}\n\n'], [b'{"a":1}']),
        ([b"data: line1\ndata: line2\n\n"], [b"line1\nline2"]),
        ([b'data:{"nospace":1}\n\n'], [b'{"nospace":1}']),
        ([b"data: [DONE]"], [b"[DONE]"]),  # no trailing blank line at end of stream
        ([b'data: {"a":1}\n'], [b'{"a":1}']),
        ([b""], []),
        ([b"\n\n\n"], []),
    ],
)
def test_framing(chunks, expected):
    assert feed_all(chunks) == expected


def test_split_in_the_middle_of_crlf():
    d = SSEDecoder()
    assert d.feed(b'data: {"a":1}\r') == []
    assert d.feed(b"\n\r") == []
    assert d.feed(b"\n") == [b'{"a":1}']


def test_pending_bytes_tracks_unfinished_event():
    d = SSEDecoder()
    d.feed(b'data: {"partial"')
    assert d.pending_bytes == len(b'data: {"partial"')
