"""The benchmarks: `make bench` and its siblings run each as a module of the repository
(`python -m bench.run`), so they import authsvc, demo and tests as the tests do."""
