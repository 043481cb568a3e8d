"""W3C Trace Context (https://www.w3.org/TR/trace-context/): reading, continuing and writing
`traceparent`, so one journey's log lines share a trace id across services and events."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

__all__ = ["Span", "parse"]

# version-traceid-parentid-flags, lowercase hex only; a later version may add fields after a dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\Z")
_INVALID_VERSION = "ff"
SAMPLED = "01"


def _random_id(hex_digits: int) -> str:
    # All zeros is the one value the specification forbids.
    while int(value := secrets.token_hex(hex_digits // 2), 16) == 0:
        pass
    return value


@dataclass(frozen=True, slots=True)
class Span:
    """The unit of work this process is doing (one request served, one event handled): the trace
    it belongs to, its own id, and the trace flags it passes on."""

    trace_id: str
    span_id: str
    flags: str = SAMPLED

    @classmethod
    def start(cls) -> Span:
        """The first span of a new trace. Sampled: every service logs its lines either way."""
        return cls(_random_id(32), _random_id(16))

    def child(self) -> Span:
        """A span of the same trace, whose parent is this one."""
        return Span(self.trace_id, _random_id(16), self.flags)

    @property
    def traceparent(self) -> str:
        """The header naming this span as the parent of the work it asks others to do."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse(header: str | None) -> Span | None:
    """The span a `traceparent` header names, or None when the header is absent or invalid (the
    receiver then starts a trace of its own, as the specification asks)."""
    if not header:
        return None
    found = _TRACEPARENT.match(header.strip())
    if found is None:
        return None
    version, trace_id, parent_id, flags, rest = found.groups()
    if version == _INVALID_VERSION or (version == "00" and rest is not None):
        return None
    if int(trace_id, 16) == 0 or int(parent_id, 16) == 0:
        return None
    # Only `sampled` is defined here; the specification asks that other bits be passed on as zero.
    return Span(trace_id, parent_id, f"{int(flags, 16) & 1:02x}")
