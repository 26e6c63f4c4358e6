//! GitHub Actions runtime I/O: inputs, outputs, step summary, groups, annotations, masking.
