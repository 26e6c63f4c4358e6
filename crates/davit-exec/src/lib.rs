//! Runs davit plans on a host: Local, Recording (dry-run, tests) and Ssh executors.
