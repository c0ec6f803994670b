//! A check the unit tests share: the descriptors a function holds while
//! it runs never leak into a program another thread starts meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` in a loop on another thread, so what it opens is open much of
/// the time, while up to 40 programs are started here, each listing the
/// descriptors it inherited (`ls -l /proc/self/fd/`). Gives the first
/// listing in which `leaked` finds one, if any. (Code that opens with
/// close-on-exec cannot fail this; a descriptor without it is caught
/// within a few programs.)
pub(crate) fn inherited_while(
    f: impl Fn() + Sync,
    leaked: impl Fn(&str) -> bool,
) -> Option<String> {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                f();
            }
        });
        let mut found = None;
        for _ in 0..40 {
            let out = std::process::Command::new("ls")
                .args(["-l", "/proc/self/fd/"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if leaked(&text) {
                found = Some(text);
                break;
            }
        }
        done.store(true, Ordering::Relaxed);
        found
    })
}
