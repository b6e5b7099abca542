"""What authsvc tells its operators: the decision line and the Prometheus metrics."""
