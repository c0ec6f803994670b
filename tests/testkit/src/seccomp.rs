//! `firma-testkit seccomp --errno ERRNO --syscall NAME [--syscall NAME…] --
//! CMD ARGS…`: runs CMD with a seccomp filter that makes the named system
//! calls fail with ERRNO (`EPERM`, `ENOSYS`, …) and allows everything else.
//! The tests use it to make the kernel refuse `pidfd_open`,
//! `pidfd_send_signal` or `openat2` for real, so the error paths of the
//! core run against the kernel's own answer, not a mock. The name
//! `clone_pidfd` stands for no system call of its own: a child process
//! with a pidfd (`clone3` fails with `ENOSYS`, as before Linux 5.3, so
//! libc falls back to `clone`; `clone` with `CLONE_PIDFD` in its flags
//! fails with ERRNO), while threads and plain children are still made.
//!
//! The filter is a small classic-BPF program installed with
//! `prctl(PR_SET_NO_NEW_PRIVS)` and `seccomp(SECCOMP_SET_MODE_FILTER)` just
//! before `execvp`; it is inherited by CMD and everything it starts. It
//! checks the architecture first: on anything but x86_64 (and for x32
//! system call numbers) it kills the process rather than filter the wrong
//! numbers. The system call numbers are x86_64's; on another architecture
//! the subcommand refuses to run.

use std::ffi::CString;

/// The calls a test may make fail, by name; the numbers are the target's
/// (libc's), and the subcommand runs on x86_64 only.
const SYSCALLS: &[(&str, libc::c_long)] = &[
    ("pidfd_send_signal", libc::SYS_pidfd_send_signal),
    ("pidfd_open", libc::SYS_pidfd_open),
    ("openat2", libc::SYS_openat2),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("clone_pidfd", CLONE_PIDFD_NR as libc::c_long),
];

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`),
/// which libc does not export.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// `__X32_SYSCALL_BIT`, which libc exports for the x32 target only.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
// Offsets in struct seccomp_data.
const NR_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, nr) as u32;
/// The low 32 bits of the first argument (x86_64 is little-endian): the
/// flags of `clone`.
const ARG0_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, args) as u32;
/// The pseudo system call number of `clone_pidfd` in a program's list.
const CLONE_PIDFD_NR: u32 = u32::MAX;
const ARCH_OFFSET: u32 = std::mem::offset_of!(libc::seccomp_data, arch) as u32;

fn errno_of(name: &str) -> Option<u32> {
    Some(match name {
        "EPERM" => libc::EPERM,
        "ENOSYS" => libc::ENOSYS,
        "EMFILE" => libc::EMFILE,
        "EINVAL" => libc::EINVAL,
        "EACCES" => libc::EACCES,
        "ENOMEM" => libc::ENOMEM,
        "EBADF" => libc::EBADF,
        _ => return name.parse().ok(),
    } as u32)
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: arch check, x32 check, one comparison per system call.
pub fn program(errno: u32, nrs: &[u32]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let mut p = vec![
        stmt(LD_W_ABS, ARCH_OFFSET),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR_OFFSET),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ];
    if nrs.contains(&CLONE_PIDFD_NR) {
        const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
        p.extend([
            jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
            // Not clone: on to the comparisons below, the number reloaded.
            jump(JEQ_K, libc::SYS_clone as u32, 0, 3),
            stmt(LD_W_ABS, ARG0_OFFSET),
            jump(JSET_K, libc::CLONE_PIDFD as u32, 0, 1),
            stmt(RET_K, libc::SECCOMP_RET_ERRNO | (errno & 0xffff)),
            stmt(LD_W_ABS, NR_OFFSET),
        ]);
    }
    let nrs: Vec<u32> = nrs
        .iter()
        .copied()
        .filter(|&nr| nr != CLONE_PIDFD_NR)
        .collect();
    let n = nrs.len();
    for (i, &nr) in nrs.iter().enumerate() {
        // Match: jump over the remaining comparisons and the ALLOW.
        let to_errno = (n - i - 1 + 1) as u8;
        p.push(jump(JEQ_K, nr, to_errno, 0));
    }
    p.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    p.push(stmt(RET_K, libc::SECCOMP_RET_ERRNO | (errno & 0xffff)));
    p
}

/// Parses the arguments, installs the filter and execs; returns only on
/// failure (with the exit status to use).
pub fn run(args: &[String]) -> u8 {
    const USAGE: &str =
        "usage: firma-testkit seccomp --errno ERRNO --syscall NAME [--syscall NAME…] -- CMD ARGS…";
    if !cfg!(target_arch = "x86_64") {
        eprintln!(
            "firma-testkit seccomp: refused: the filter knows x86_64's system call numbers only"
        );
        return 2;
    }
    let mut errno = None;
    let mut nrs = Vec::new();
    let mut it = args.iter();
    let mut cmd: Vec<CString> = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--errno" => errno = it.next().and_then(|e| errno_of(e)),
            "--syscall" => {
                let Some(name) = it.next() else {
                    eprintln!("{USAGE}");
                    return 2;
                };
                match SYSCALLS.iter().find(|(n, _)| n == name) {
                    Some(&(_, nr)) => nrs.push(nr as u32),
                    None => {
                        eprintln!("firma-testkit seccomp: unknown system call {name:?}");
                        return 2;
                    }
                }
            }
            "--" => {
                cmd = it.map(|s| CString::new(s.as_str()).unwrap()).collect();
                break;
            }
            _ => {
                eprintln!("{USAGE}");
                return 2;
            }
        }
    }
    let (Some(errno), false, false) = (errno, nrs.is_empty(), cmd.is_empty()) else {
        eprintln!("{USAGE}");
        return 2;
    };
    let prog = program(errno, &nrs);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl/seccomp calls on this process; `fprog` points at
    // `prog`, alive across the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            eprintln!(
                "firma-testkit seccomp: PR_SET_NO_NEW_PRIVS refused: {}",
                std::io::Error::last_os_error()
            );
            return 1;
        }
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        ) != 0
        {
            eprintln!(
                "firma-testkit seccomp: refused: the kernel did not install the filter: {}",
                std::io::Error::last_os_error()
            );
            return 1;
        }
    }
    let mut argv: Vec<*const libc::c_char> = cmd.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: argv is a null-terminated array of valid C strings.
    unsafe { libc::execvp(argv[0], argv.as_ptr()) };
    eprintln!(
        "firma-testkit seccomp: cannot run {:?}: {}",
        cmd[0],
        std::io::Error::last_os_error()
    );
    127
}
