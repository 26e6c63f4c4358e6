//! Demo HTTP service with /health, /metrics and fault modes, for the demo, tests and benchmarks.
