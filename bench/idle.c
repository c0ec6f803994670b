/*
 * idle: what each child of a benchmark fleet runs (bench/src/fleet.rs).
 *
 * It waits until it is killed, and maps almost nothing: no libc, no dynamic
 * loader, a 12 KiB resident set. Children that share big mappings (forks
 * of the fleet, or 10,000 copies of a dynamically linked `sleep` with libc)
 * make this VM's memory monitor (DAMON's kdamond, which walks every mapping
 * of each page it samples) take up to half a core while the fleet stands,
 * at moments no contender can predict; with this program it stays below
 * 1 %. Built by `make bench-c` with -static -nostdlib.
 */

#if defined(__x86_64__)
void _start(void) {
    for (;;) {
        /* pause(): returns only when a signal handler ran, and none is set. */
        __asm__ volatile("syscall" : : "a"(34L) : "rcx", "r11", "memory");
    }
}
#elif defined(__aarch64__)
void _start(void) {
    for (;;) {
        /* ppoll(NULL, 0, NULL, NULL): arm64 has no pause(). */
        register long x8 __asm__("x8") = 73;
        register long x0 __asm__("x0") = 0;
        register long x1 __asm__("x1") = 0;
        register long x2 __asm__("x2") = 0;
        register long x3 __asm__("x3") = 0;
        __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    }
}
#else
#error "bench/idle.c: add this architecture's system call for waiting"
#endif
