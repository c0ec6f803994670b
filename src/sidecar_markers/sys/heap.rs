//! Giving freed heap back to the kernel (`malloc_trim(3)`, glibc only):
//! a full scan of a large `run/` allocates and frees per-marker
//! temporaries on its worker threads, and a watcher that lives for days
//! should not keep that high-water mark resident.

/// Returns free heap at the top of each arena and whole free pages inside
/// them to the kernel. Does nothing where the C library has no
/// `malloc_trim`.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a size and touches only the allocator's
    // own state, under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_is_harmless() {
        let v: Vec<Vec<u8>> = (0..1000).map(|i| vec![0u8; 1000 + i]).collect();
        drop(v);
        super::trim();
        super::trim();
    }
}
