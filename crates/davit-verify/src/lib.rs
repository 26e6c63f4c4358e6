//! Post-deploy verification: HTTP probes directly and through the proxy, rollback on failure.
