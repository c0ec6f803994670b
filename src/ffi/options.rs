//! Options objects. Every JSON object the ABI accepts (the options of
//! `firma_sidecar_stop`, `firma_watch_open` and `firma_sidecar_wait`, the
//! marker of `firma_marker_create`) is read one way, by
//! `parse_options`: a serde visitor over the object's keys that refuses a
//! key it has already seen, a key it does not know, and a value of the wrong
//! type, each naming the key. serde_json's own maps keep the last of
//! duplicate keys, so `{"verify_identity":true,"verify_identity":false}`
//! would mean false here while a validator that reads the first key saw
//! true; a duplicate is refused instead (after decoding escapes, so
//! `"verify\u005fidentity"` is the same key).

use super::FfiError;
use crate::sidecar_markers as sm;

/// An options object: its keys, and how to read the value of each.
pub(super) trait OptionsObject: Default {
    /// Every key, in the order error messages list them.
    const KEYS: &'static [&'static str];
    /// Reads the value of `key` (one of `KEYS`, seen once) from `map`.
    fn read<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error>;
}

/// A key as JSON spells it, quoted and escaped: one line, whatever it holds.
fn quoted(key: &str) -> String {
    serde_json::Value::String(key.to_owned()).to_string()
}

/// The value of `key`, or an error naming the key and what it must be.
pub(super) fn option_value<'de, V, A>(map: &mut A, key: &str, want: &str) -> Result<V, A::Error>
where
    V: serde::Deserialize<'de>,
    A: serde::de::MapAccess<'de>,
{
    map.next_value()
        .map_err(|_| serde::de::Error::custom(format!("{} must be {want}", quoted(key))))
}

/// What a key of milliseconds or null must be.
pub(super) const MS_OR_NULL: &str = "a non-negative integer of milliseconds or null";

/// Stores `value` in `slot`; `null` (`None`) keeps the default.
pub(super) fn unless_null<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Stores `ms` milliseconds in `slot`; `null` (`None`) keeps the default.
pub(super) fn millis_unless_null(slot: &mut std::time::Duration, ms: Option<u64>) {
    unless_null(slot, ms.map(std::time::Duration::from_millis));
}

/// Implements [`OptionsObject`] from a table: each key, in the order error
/// messages list them, with what its value must be and how it is stored.
/// `|o, v| set` stores the value `v` in the object `o`; `v` has the type
/// `set` needs (annotate it where `set` does not fix it), read by
/// [`option_value`].
macro_rules! options_object {
    ($ty:ty {
        $($key:literal: $want:expr => |$o:ident, $v:ident $(: $vt:ty)?| $set:expr;)+
    }) => {
        impl $crate::ffi::options::OptionsObject for $ty {
            const KEYS: &'static [&'static str] = &[$($key),+];

            fn read<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<(), A::Error> {
                match key {
                    $($key => {
                        let $o = &mut *self;
                        let $v $(: $vt)? = $crate::ffi::options::option_value(map, key, $want)?;
                        $set;
                    })+
                    _ => unreachable!("the visitor passes only known keys"),
                }
                Ok(())
            }
        }
    };
}
pub(super) use options_object;

/// Deserializes an [`OptionsObject`] from a JSON object, key by key.
struct Options<T>(T);

impl<'de, T: OptionsObject> serde::Deserialize<'de> for Options<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: OptionsObject> serde::de::Visitor<'de> for Visit<T> {
            type Value = Options<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a JSON object with any of the keys {}",
                    T::KEYS.join(", ")
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let mut out = T::default();
                let mut seen: Vec<String> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !T::KEYS.contains(&key.as_str()) {
                        return Err(A::Error::custom(format!(
                            "unknown key {} (known: {})",
                            quoted(&key),
                            T::KEYS.join(", ")
                        )));
                    }
                    if seen.contains(&key) {
                        return Err(A::Error::custom(format!(
                            "duplicate key {}: each key may appear once",
                            quoted(&key)
                        )));
                    }
                    out.read(&key, &mut map)?;
                    seen.push(key);
                }
                Ok(Options(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The one way an options object is parsed: NULL (`None`) is the defaults;
/// otherwise one JSON object, each key known and present once, each value
/// of its key's type. The error names the argument (`arg`, such as
/// `options_json`) and the bad key.
pub(super) fn parse_options<T: OptionsObject>(
    json: Option<&str>,
    arg: &str,
) -> Result<T, FfiError> {
    let Some(json) = json else {
        return Ok(T::default());
    };
    serde_json::from_str::<Options<T>>(json)
        .map(|o| o.0)
        .map_err(|e| {
            let shown = sm::text::one_line(&e.to_string());
            FfiError::invalid(if e.is_data() {
                format!("{arg}: {shown}")
            } else {
                format!("{arg} is not valid JSON: {shown}")
            })
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ffi::stop::stop_options;
    use crate::ffi::watch::watch_options;
    use crate::sidecar_markers::ErrorCode;

    /// The message of an options error (it must be `invalid_argument`).
    fn invalid<T>(r: Result<T, FfiError>) -> String {
        let e = r.err().expect("an error").0;
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{}", e.message);
        e.message
    }

    #[test]
    fn a_duplicate_key_in_any_options_object_is_refused_naming_it() {
        let stop_dups = [
            (
                r#"{"verify_identity":true,"verify_identity":false}"#,
                "verify_identity",
            ),
            (
                r#"{"verify_identity":false,"verify_identity":true}"#,
                "verify_identity",
            ),
            (
                r#"{"verify_identity":false,"verify_identity":false}"#,
                "verify_identity",
            ),
            // The same key spelled with an escape is the same key.
            (
                r#"{"verify_identity":true,"verify\u005fidentity":false}"#,
                "verify_identity",
            ),
            (r#"{"signal":"TERM","kill":true,"signal":9}"#, "signal"),
            (r#"{"grace_ms":10,"grace_ms":20}"#, "grace_ms"),
            (r#"{"kill":true,"kill":false}"#, "kill"),
        ];
        for (json, key) in stop_dups {
            let msg = invalid(stop_options(Some(json)));
            assert!(msg.contains("duplicate key"), "{json}: {msg}");
            assert!(msg.contains(&format!("\"{key}\"")), "{json}: {msg}");
            assert!(msg.starts_with("options_json: "), "{json}: {msg}");
        }
        let watch_dups = [
            (r#"{"collect":false,"collect":true}"#, "collect"),
            (r#"{"timeout_ms":100,"timeout_ms":200}"#, "timeout_ms"),
            (
                r#"{"probe_interval_ms":null,"probe_interval_ms":5}"#,
                "probe_interval_ms",
            ),
            (
                r#"{"rescan_interval_ms":5,"collect":true,"rescan_interval_ms":5}"#,
                "rescan_interval_ms",
            ),
        ];
        for (json, key) in watch_dups {
            let msg = invalid(watch_options(Some(json)));
            assert!(msg.contains("duplicate key"), "{json}: {msg}");
            assert!(msg.contains(&format!("\"{key}\"")), "{json}: {msg}");
        }
    }

    #[test]
    fn options_objects_are_read_one_way_with_errors_naming_key_and_value() {
        let o = stop_options(Some(
            r#"{"signal":"INT","grace_ms":25,"kill":false,"verify_identity":false}"#,
        ))
        .ok()
        .expect("valid stop options");
        assert_eq!(
            o,
            sm::StopOptions {
                signal: libc::SIGINT,
                grace: Duration::from_millis(25),
                kill: false,
                verify_identity: false,
            }
        );
        assert_eq!(
            stop_options(Some(r#"{"signal":9}"#)).ok().map(|o| o.signal),
            Some(9)
        );
        assert_eq!(
            stop_options(Some("{}")).ok(),
            Some(sm::StopOptions::default())
        );
        assert_eq!(stop_options(None).ok(), Some(sm::StopOptions::default()));
        let w = watch_options(Some(
            r#"{"timeout_ms":7,"probe_interval_ms":8,"rescan_interval_ms":null,"collect":false}"#,
        ))
        .ok()
        .expect("valid watch options");
        let d = sm::WatchOptions::default();
        assert_eq!(w.probe.timeout, Duration::from_millis(7));
        assert_eq!(w.probe_interval, Duration::from_millis(8));
        assert_eq!(w.rescan_interval, d.rescan_interval);
        assert!(!w.collect);

        let stop_bad = [
            (
                r#"{"grace":1}"#,
                r#"unknown key "grace" (known: signal, grace_ms, kill, verify_identity)"#,
            ),
            (r#"{"kill":1}"#, r#""kill" must be true or false"#),
            (r#"{"kill":null}"#, r#""kill" must be true or false"#),
            (
                r#"{"verify_identity":"no"}"#,
                r#""verify_identity" must be true or false"#,
            ),
            (
                r#"{"grace_ms":-5}"#,
                r#""grace_ms" must be a non-negative integer"#,
            ),
            (
                r#"{"grace_ms":1.5}"#,
                r#""grace_ms" must be a non-negative integer"#,
            ),
            (
                r#"{"signal":[9]}"#,
                r#""signal" must be a signal name or number"#,
            ),
            (
                r#"{"signal":1.5}"#,
                r#""signal" must be a signal name or number"#,
            ),
            (
                r#"{"signal":0}"#,
                r#""signal" 0 is not a signal number in 1..="#,
            ),
            (
                r#"{"signal":-15}"#,
                r#""signal" -15 is not a signal number"#,
            ),
            (
                r#"{"signal":4294967311}"#,
                r#""signal" 4294967311 is not a signal number"#,
            ),
            (
                r#"{"signal":"SIGRTMIN+-30"}"#,
                r#""SIGRTMIN+-30" is not a signal"#,
            ),
            (r#"{"signal":"NOPE"}"#, r#""NOPE" is not a signal name"#),
            // A control character in a key is escaped, never echoed raw.
            ("{\"a\\nb\":1}", r#"unknown key "a\nb""#),
            (
                "[]",
                "options_json: invalid type: sequence, expected a JSON object",
            ),
            (
                "null",
                "options_json: invalid type: null, expected a JSON object",
            ),
            ("{", "options_json is not valid JSON"),
            (r#"{"kill":true} x"#, "options_json is not valid JSON"),
        ];
        for (json, want) in stop_bad {
            let msg = invalid(stop_options(Some(json)));
            assert!(msg.contains(want), "{json}: {msg}");
            assert!(!msg.contains('\n'), "{json}: {msg}");
        }
        let watch_bad = [
            (
                r#"{"probe_interval":5}"#,
                r#"unknown key "probe_interval" (known: timeout_ms,"#,
            ),
            (
                r#"{"collect":1}"#,
                r#""collect" must be true, false or null"#,
            ),
            (
                r#"{"timeout_ms":-1}"#,
                r#""timeout_ms" must be a non-negative integer"#,
            ),
            (
                "7",
                "options_json: invalid type: integer `7`, expected a JSON object",
            ),
        ];
        for (json, want) in watch_bad {
            let msg = invalid(watch_options(Some(json)));
            assert!(msg.contains(want), "{json}: {msg}");
        }
    }
}
