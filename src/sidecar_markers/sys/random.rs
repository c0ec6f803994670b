//! Random bytes from the kernel (`getrandom(2)`), for names nobody can
//! predict and plant something under first.

use std::io;

use super::cvt;

/// Fills `buf` from `getrandom(2)` (flags 0: the kernel's random source,
/// which blocks only until it is seeded early in boot), retrying `EINTR`
/// and short reads. An error (a seccomp filter, a kernel before 3.17) is
/// the caller's to handle: nothing weaker is substituted here.
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let rest = &mut buf[got..];
        // SAFETY: writes at most `rest.len()` bytes into `rest`.
        match cvt(unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) }) {
            // Never for a non-empty buffer; an error rather than a loop.
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Ok(n) => got += n as usize,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        super::fill(&mut a).unwrap();
        super::fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
