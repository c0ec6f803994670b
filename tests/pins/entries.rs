//! docs/design.md, "Entries": placeholder.
