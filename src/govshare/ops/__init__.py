"""运维监控: what an operator watches — readiness (``/readyz``), Prometheus metrics
(``/metrics``), request ids and structured logs, alert mail."""
