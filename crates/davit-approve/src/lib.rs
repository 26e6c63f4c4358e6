//! Production approval gate: GitHub issue, environment or terminal approval.
