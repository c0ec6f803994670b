//! The crate's one macro, kept apart so that `error.rs` and `model.rs`
//! can both use it without importing each other.

/// `Display` as the name `as_str` gives, for the core's enums of names.
macro_rules! display_as_str {
    ($($t:ty),+) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}
pub(crate) use display_as_str;
