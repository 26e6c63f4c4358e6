//! Deploy strategies (compose, blue-green), nginx switch, release ledger and rollback.
