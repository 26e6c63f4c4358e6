//! The davit CLI for laptops: demo, deploy, rollback, verify, releases.
