//! davit.toml: typed settings, defaults, validation with errors that name the fix.
