"""Optional Elastic APM: a transaction per request served and per event handled, in the kit's own
W3C trace, sent only when ELASTIC_APM_SERVER_URL is set (the agent is imported only then)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from shopkit.keys import APM, SETTINGS
from shopkit.settings import KitSettings
from shopkit.traces import Span

if TYPE_CHECKING:
    import elasticapm

__all__ = ["Apm", "Ending", "apm_ctx"]

log = logging.getLogger("shopkit.apm")
# The intake's names for a transaction's outcome (its error rate counts the failures).
SUCCESS, FAILURE = "success", "failure"


@dataclass(slots=True)
class Ending:
    """How a unit of work ended, filled in by the code that did it: its name (a route template,
    an event type), its result (`HTTP 2xx`, `handled`) and whether it failed."""

    name: str = ""
    result: str = ""
    # Until the work says otherwise: work cut short (cancelled, raised) counts as failed.
    failed: bool = True


class Apm:
    """Records the kit's spans as APM transactions. The kit's trace context stays the source of
    truth: a transaction takes the trace id, the parent id and the span id of the kit's span, so
    the transaction, the log lines (`trace.id`, `span.id`) and the `traceparent` the kit sends on
    name the same trace and the same unit of work."""

    def __init__(self, client: elasticapm.Client) -> None:
        self._client = client

    @classmethod
    def start(cls, settings: KitSettings) -> Apm:
        """The agent, sending to `settings.apm_server_url` from a thread of its own."""
        return cls(_client(settings))

    async def close(self) -> None:
        """Send what is queued and stop the agent's threads."""
        # Blocking (it joins the agent's sender thread), so off the loop.
        await asyncio.to_thread(self._client.close)

    @contextlib.contextmanager
    def transaction(self, kind: str, span: Span, parent: Span | None) -> Iterator[Ending]:
        """A transaction of type `kind` lasting the block, for the work the kit does as `span`,
        whose caller's span is `parent` (None when the kit started the trace)."""
        from elasticapm.utils.disttracing import TraceParent

        # The agent's transaction has a parent when the trace parent's span id differs from its
        # own id: the caller's span, or (a trace the kit started) the span itself, making a root.
        caller = parent.span_id if parent is not None else span.span_id
        trace_parent = TraceParent.from_string(f"00-{span.trace_id}-{caller}-{span.flags}")
        # None when the agent is not recording (ELASTIC_APM_RECORDING=false).
        transaction = self._client.begin_transaction(kind, trace_parent=trace_parent)
        if transaction is not None:
            # The kit's span id, not a random one of the agent's, so APM and the logs agree.
            transaction.id = span.span_id
        ending = Ending()
        try:
            yield ending
        finally:
            if transaction is not None:
                transaction.outcome = FAILURE if ending.failed else SUCCESS
                # The agent's end_transaction carries no annotations.
                self._client.end_transaction(ending.name, ending.result)  # type: ignore[no-untyped-call]

    def describe_request(self, request: web.Request, status: int) -> None:
        """The HTTP context of the request transaction under way (method, path, status)."""
        import elasticapm

        elasticapm.set_context(
            {"method": request.method, "url": {"pathname": request.path}}, "request"
        )
        elasticapm.set_context({"status_code": status}, "response")


def _client(settings: KitSettings) -> elasticapm.Client:
    try:
        import elasticapm
    except ImportError as missing:
        raise RuntimeError(
            "ELASTIC_APM_SERVER_URL is set but the APM agent is not installed: "
            "install shopkit[apm] (the image build argument APM=true)"
        ) from missing
    secret = settings.apm_secret_token
    # The agent also reads ELASTIC_APM_* from the environment, ahead of what it is given here: the
    # same variables, so they agree; only a variable set but empty wins over the kit's default
    # (ELASTIC_APM_ENVIRONMENT= gives an empty environment, not ENVIRONMENT's).
    return elasticapm.Client(
        service_name=settings.service_name,
        server_url=settings.apm_server_url,
        secret_token=secret.value if secret is not None else None,
        environment=settings.apm_environment or settings.environment,
        framework_name="aiohttp",
        framework_version=aiohttp.__version__,
        # Never patch libraries: its aiohttp client instrumentation would write a `traceparent`
        # of its own over the kit's on outgoing calls (the kit calls no `instrument()` either).
        instrument=False,
        # The kit's log lines carry the trace and span ids already, in its own fields.
        disable_log_record_factory=True,
        # Configuration comes from the environment only (README), not from Kibana at run time.
        central_config=False,
    )


async def apm_ctx(app: web.Application) -> AsyncIterator[None]:
    """The APM agent while the app lives, when ELASTIC_APM_SERVER_URL is set; else nothing of it
    is imported and app[APM] is None."""
    settings = app[SETTINGS]
    if not settings.apm_server_url:
        app[APM] = None
        yield
        return
    recorder = Apm.start(settings)
    app[APM] = recorder
    log.info("sending APM transactions to %s", settings.apm_server_url)
    try:
        yield
    finally:
        await recorder.close()
