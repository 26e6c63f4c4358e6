//! End-to-end suites against real Docker, nginx and friends.
