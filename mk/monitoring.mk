# Observability: the PrometheusRule and the Grafana dashboard (charts/kserve-kit,
# manifests/components/monitoring), checked with promtool and a real Prometheus server
# (Debian's package: apt-get install prometheus; .ci/run installs it). docs/observability.md.

##@ Monitoring

.PHONY: test-monitoring
test-monitoring: install-manifests ## promtool check/test rules, dashboard and rule PromQL against a real Prometheus scraping the servers
	$(VENV)/bin/pytest -m monitoring tests/monitoring $(PYTEST_ARGS)

.PHONY: observability-plot
observability-plot: install-manifests ## Redraw docs/img/observability-metrics.png from the monitoring tests' Prometheus
	KIT_OBSERVABILITY_PLOT=docs/img/observability-metrics.png \
		$(VENV)/bin/pytest -m monitoring tests/monitoring/test_prometheus.py -k mix $(PYTEST_ARGS)
