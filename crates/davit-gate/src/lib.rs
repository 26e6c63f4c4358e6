//! Lint-and-test gate: named checks, presets, service waits, JUnit and coverage reports.
