"""RFC 6587 framing of a syslog TCP stream, decoded incrementally and without I/O.

A connection's framing is decided once, by its first byte: a digit ``1``-``9`` starts
octet counting (``MSG-LEN SP MSG``, RFC 6587 3.4.1, what RFC 5425 and ``loggen -P``
send); anything else is non-transparent framing, where LF or NUL ends a message (3.4.2,
what ``logger`` and most BSD senders send). A trailing CR and the LF some senders put
inside an octet-counted message are removed; empty messages are dropped.

Frames over ``max_frame`` bytes never reach memory whole. What happens then:

- octet counting: the declared length is known, so exactly that many bytes are skipped
  and the next frame is read as usual (the stream stays in sync); counted as oversized.
- LF framing: bytes are dropped up to the next LF or NUL, where the next message starts
  (as rsyslog does past its maximum message size); counted as oversized.
- a header that is not ``[1-9][0-9]* SP`` (or longer than ``MAX_HEADER_DIGITS`` digits)
  in an octet-counted stream cannot be resynchronised: the decoder reports a fatal error
  and the connection is closed. The frames before it are still returned.

The decoder is pure: the same bytes give the same frames however they are split into
chunks (tested with hypothesis), which is what makes it safe to feed with ``recv``.
The common octet-counted frames (complete, within the size limit) are cut by the C
extension when it is built (``_native.octet_frames``), else by :func:`octet_prefix`,
its Python reference; the rest of a chunk is read here either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.ingest.native import octet_frames_fn

MAX_HEADER_DIGITS = 10
_DIGITS = b"0123456789"
_LF, _NUL, _SP = b"\n", b"\0", 0x20

Prefix = Callable[[bytes, int, int], tuple[list[bytes], int]]


def octet_prefix(data: bytes, pos: int, limit: int) -> tuple[list[bytes], int]:
    """The octet-counted frames at the start of ``data[pos:]`` while each has a header
    ``[1-9][0-9]{0,9} SP`` and is complete and at most ``limit`` bytes (a trailing LF or
    CR LF inside removed, empty ones dropped), and where that stopped."""
    frames: list[bytes] = []
    end, find = len(data), data.find
    while pos < end:
        space = find(b" ", pos, pos + MAX_HEADER_DIGITS + 1)
        head = data[pos:space]
        if space < 0 or not head.isdigit() or head[0] == 0x30:
            break
        start = space + 1
        stop = start + int(head)
        if stop > end or stop - start > limit:
            break
        pos = stop
        if data[stop - 1] == 0x0A:
            stop -= 2 if stop - start > 1 and data[stop - 2] == 0x0D else 1
        if stop > start:
            frames.append(data[start:stop])
    return frames, pos


@dataclass(slots=True)
class Decoded:
    """What one chunk yielded: complete messages, how many were dropped for their size,
    and a fatal error (the connection must be closed) or None."""

    frames: list[bytes] = field(default_factory=list)
    oversized: int = 0
    error: str | None = None


class FrameDecoder:
    """Incremental RFC 6587 decoder for one TCP connection.

    ``feed(chunk)`` returns the messages completed by ``chunk``; ``finish()`` at end of
    stream returns the last LF-framed message that had no terminator, or an error for an
    octet-counted frame cut short. After a fatal error the decoder takes no more input.
    """

    def __init__(self, max_frame: int, native: bool = True) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be at least 1")
        self.max_frame = max_frame
        self._prefix: Prefix = (octet_frames_fn() if native else None) or octet_prefix
        # None until the first byte; then True (octet counting) or False (LF framing).
        self.octet_counting: bool | None = None
        self.failed: str | None = None
        self._buf = b""
        # Octet counting: bytes of an oversized frame still to skip.
        # LF framing: dropping the rest of an oversized line (-1) or not (0).
        self._skip = 0

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete (bounded by ``max_frame`` plus a chunk)."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> Decoded:
        out = Decoded()
        if self.failed is not None:
            out.error = self.failed
            return out
        if not chunk:
            return out
        if self.octet_counting is None:
            first = chunk[0]
            self.octet_counting = 0x31 <= first <= 0x39
        if self.octet_counting:
            self._octets(chunk, out)
        else:
            self._lines(chunk, out)
        return out

    def finish(self) -> Decoded:
        """End of stream: the unterminated last line (LF framing), or what was cut short."""
        out = Decoded()
        rest, self._buf = self._buf, b""
        if self.failed is not None or not rest:
            return out
        if self.octet_counting:
            out.error = f"stream ended inside a frame ({len(rest)} bytes held)"
            self.failed = out.error
        elif self._skip == 0:
            line = rest[:-1] if rest[-1] == 0x0D else rest
            if len(line) > self.max_frame:
                out.oversized += 1
            elif line:
                out.frames.append(line)
        return out

    def _lines(self, chunk: bytes, out: Decoded) -> None:
        if _NUL in chunk:
            chunk = chunk.replace(_NUL, _LF)
        if self._skip:
            cut = chunk.find(_LF)
            if cut < 0:
                return  # still inside the oversized line
            self._skip = 0
            chunk = chunk[cut + 1 :]
        data = self._buf + chunk if self._buf else chunk
        cut = data.rfind(_LF)
        rest = data[cut + 1 :]
        if cut >= 0:
            self._keep_lines(data[:cut].split(_LF), out)
        if len(rest) > self.max_frame + 1:  # room for a CR before the LF
            out.oversized += 1
            self._skip = -1
            rest = b""
        self._buf = rest

    def _keep_lines(self, lines: list[bytes], out: Decoded) -> None:
        limit = self.max_frame
        if max(map(len, lines)) > limit + 1:
            kept = [line for line in lines if len(line) <= limit + 1]
            out.oversized += len(lines) - len(kept)
            lines = kept
        frames = out.frames
        for line in lines:
            if line and line[-1] == 0x0D:
                line = line[:-1]
            if len(line) > limit:
                out.oversized += 1
            elif line:
                frames.append(line)

    def _skipped(self, chunk: bytes) -> bytes:
        """What is left of ``chunk`` after the rest of an oversized counted frame."""
        if len(chunk) <= self._skip:
            self._skip -= len(chunk)
            return b""
        chunk = chunk[self._skip :]
        self._skip = 0
        return chunk

    def _octets(self, chunk: bytes, out: Decoded) -> None:
        if self._skip:
            chunk = self._skipped(chunk)
        data = self._buf + chunk if self._buf else chunk
        limit = self.max_frame
        frames, pos = self._prefix(data, 0, limit)
        out.frames, end, find = frames, len(data), data.find
        while pos < end:
            # What the prefix left: usually one frame cut by the chunk's end, sometimes an
            # oversized frame (then the frames after it); a header that is cut or bad
            # goes to _header.
            space = find(b" ", pos, pos + MAX_HEADER_DIGITS + 1)
            head = data[pos:space]
            if space < 0 or not head.isdigit() or head[0] == 0x30:
                space = self._header(data, pos, end, out) - 1
                if space < 0:
                    break  # the header continues in the next chunk, or is bad
                head = data[pos:space]
            size = int(head)
            start = space + 1
            stop = start + size
            if stop > end:
                if size > limit:
                    out.oversized += 1
                    self._skip = stop - end
                    pos = end
                break  # the message continues in the next chunk
            pos = stop
            if size > limit:
                out.oversized += 1
                continue
            if data[stop - 1] == 0x0A:  # the LF some senders put inside the frame
                stop -= 2 if stop - start > 1 and data[stop - 2] == 0x0D else 1
            if stop > start:
                frames.append(data[start:stop])
        self._buf = b"" if self.failed else data[pos:]

    def _header(self, data: bytes, pos: int, end: int, out: Decoded) -> int:
        """Where the message after the ``LENGTH SP`` at ``pos`` starts; -1 when the
        header is not complete yet or is bad (then ``out.error`` says so)."""
        space = data.find(b" ", pos, pos + MAX_HEADER_DIGITS + 1)
        if space < 0:
            if end - pos > MAX_HEADER_DIGITS or not _digits_only(data, pos, end):
                self._fail(out, data, pos)
            return -1
        if data[pos] == 0x30 or not _digits_only(data, pos, space):
            self._fail(out, data, pos)
            return -1
        return space + 1

    def _fail(self, out: Decoded, data: bytes, pos: int) -> None:
        shown = data[pos : pos + 12]
        self.failed = f"bad octet-counting header at {shown!r}: expected 'LENGTH SP'"
        out.error = self.failed


def _digits_only(data: bytes, start: int, end: int) -> bool:
    return end > start and not data[start:end].translate(None, _DIGITS)


def datagram_message(data: bytes, max_frame: int) -> bytes | None:
    """One UDP datagram as one message (RFC 5426): without the trailing LF/NUL/CR some
    senders add, and without an RFC 6587 length in front when it counts exactly the rest
    (``loggen -P`` frames datagrams too); None when it is empty or over ``max_frame``."""
    if data and 0x31 <= data[0] <= 0x39:
        space = data.find(b" ", 1, MAX_HEADER_DIGITS + 1)
        if (
            space > 0
            and _digits_only(data, 0, space)
            and int(data[:space]) == len(data) - space - 1
        ):
            data = data[space + 1 :]
    msg = data.rstrip(b"\r\n\0")
    if not msg or len(msg) > max_frame:
        return None
    return msg
