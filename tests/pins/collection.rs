//! Collection (docs/design.md, "Operations", "Trust"): placeholder.
