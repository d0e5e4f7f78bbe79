"""What the server counts, for `GET /metrics` (Prometheus text format, written by `prometheus_client`).

`Metrics` counts nothing: stdio and in-memory servers have nowhere to serve counts from. A network server
(`server.build_network_app`) gets a `PrometheusMetrics`, with a registry of its own, so that servers built in
one process (the tests build many) never count into each other. The series (all `cwmcp_...`) are listed in the
README ("Serving a team"). Labels hold only names from the config or the code (tools, tenants, outcomes,
statuses, kinds): never a secret, an argument or customer text.

The callbacks receiver counts each delivery with `runtime.metrics.callback(verified=...)` (`cwmcp_callbacks_total`).
"""

from __future__ import annotations

from typing import Literal

from mcp_server_connectwise.connectwise import RequestRecord

WriteRecoveryResult = Literal["found", "absent", "failed"]

# Seconds: a call answers within its deadline (30 s by default, at most 300 s).
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
NAMESPACE = "cwmcp"


class Metrics:
    """Counts nothing; `PrometheusMetrics` counts. Every method is cheap and never raises."""

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        """A tool call answered (`outcome` as its audit line says)."""

    def connectwise_request(self, tenant: str, record: RequestRecord) -> None:
        """One HTTP attempt to `tenant`'s ConnectWise."""

    def write_recovery(self, kind: str, result: WriteRecoveryResult) -> None:
        """A look for a `kind` of record ("note") whose POST got no clear answer."""

    def alert(self, outcome: str) -> None:
        """What report_alert did with an alert."""

    def callback(self, verified: bool) -> None:
        """A ConnectWise callback delivery: its signature verified, or refused."""


class PrometheusMetrics(Metrics):
    """Counts into a registry of its own; `exposition()` is the text `GET /metrics` answers."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, namespace=NAMESPACE, registry=self.registry)

        def histogram(name: str, documentation: str, label: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(
                name, documentation, (label,), namespace=NAMESPACE, registry=self.registry, buckets=buckets
            )

        self._tool_calls = counter("tool_calls", "Tool calls answered, by tool and outcome.", "tool", "outcome")
        self._tool_seconds = histogram("tool_call_seconds", "Wall time of a tool call.", "tool", _CALL_BUCKETS)
        self._requests = counter(
            "connectwise_requests", "HTTP attempts sent to ConnectWise.", "tenant", "method", "status"
        )
        self._request_seconds = histogram(
            "connectwise_request_seconds", "Time of a ConnectWise attempt on the wire.", "tenant", _REQUEST_BUCKETS
        )
        self._retries = counter("connectwise_retries", "ConnectWise attempts after a request's first.", "tenant")
        self._budget_waits = counter(
            "rate_budget_waits", "ConnectWise attempts that waited for the tenant's request budget.", "tenant"
        )
        self._budget_wait_seconds = histogram(
            "rate_budget_wait_seconds", "Wait for the tenant's request budget.", "tenant", _WAIT_BUCKETS
        )
        self._keys_fetched = counter(
            "impersonation_keys_fetched", "Requests for a member's impersonation keys.", "tenant"
        )
        self._recoveries = counter(
            "write_recoveries", "Looks for a record whose POST got no clear answer.", "kind", "result"
        )
        self._alerts = counter("alert_outcomes", "What report_alert did with an alert.", "outcome")
        self._callbacks = counter("callbacks", "ConnectWise callback deliveries received.", "result")

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        self._tool_calls.labels(tool, outcome).inc()
        self._tool_seconds.labels(tool).observe(seconds)

    def connectwise_request(self, tenant: str, record: RequestRecord) -> None:
        status = str(record.status) if record.status is not None else "none"
        self._requests.labels(tenant, record.method, status).inc()
        self._request_seconds.labels(tenant).observe(record.elapsed_ms / 1000)
        if record.attempt > 1:
            self._retries.labels(tenant).inc()
        if record.budget_wait_ms > 0:
            self._budget_waits.labels(tenant).inc()
            self._budget_wait_seconds.labels(tenant).observe(record.budget_wait_ms / 1000)
        if record.credentials:
            self._keys_fetched.labels(tenant).inc()

    def write_recovery(self, kind: str, result: WriteRecoveryResult) -> None:
        self._recoveries.labels(kind, result).inc()

    def alert(self, outcome: str) -> None:
        self._alerts.labels(outcome).inc()

    def callback(self, verified: bool) -> None:
        self._callbacks.labels("verified" if verified else "refused").inc()

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
