/* probe: what a program inside a container can reach, as an attacker (or an
 * audit tool such as amicontained or deepce) would try it. tests/test_isolation.py
 * builds it static (gcc -static -O2) and copies it into the test image.
 *
 *   probe syscall NAME...   each syscall with harmless or invalid arguments:
 *                           NAME=OK or NAME=ERRNO (EPERM, ENOSYS, EINVAL...).
 *                           Where the kernel would let it through, the
 *                           arguments make it change nothing (see CALLS).
 *   probe tiocsti FD TEXT   ioctl(FD, TIOCSTI) byte by byte (tty_ioctl(4)):
 *                           pushes TEXT (\n, \\ understood) into the
 *                           terminal's input; tiocsti=OK or the first errno
 *   probe packet            a packet socket (packet(7)), IPv4's old
 *                           SOCK_PACKET, raw ICMP, UDP and IP sockets (raw(7):
 *                           they need CAP_NET_RAW), IP_HDRINCL on a raw ICMP
 *                           socket, TCP_CORK (option 3 of another level) and
 *                           the ping socket socket(AF_INET, SOCK_DGRAM, ICMP)
 *                           (icmp(7): net.ipv4.ping_group_range)
 *   probe ping ADDRESS      one ICMP echo through a ping socket, as iputils'
 *                           ping sends it without CAP_NET_RAW: ping=OK when
 *                           the reply comes within 2 s, else the errno
 *   probe sid               pid, ppid, sid, pgrp, tty_nr and whether
 *                           /dev/tty (the controlling terminal) opens
 *   probe keyring           KEYCTL_GET_KEYRING_ID of the session and user
 *                           keyrings (keyrings(7)), without creating them
 *   probe readkey SERIAL    KEYCTL_READ of a key: readkey=OK:PAYLOAD or errno
 *
 * Every line is NAME=VALUE; the exit status is 0 unless the usage is wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

static void result(const char *name, long ret, int err)
{
    if (ret >= 0)
        printf("%s=OK\n", name);
    else
        printf("%s=%s\n", name, strerrorname_np(err) ? strerrorname_np(err) : "E?");
}

/* Each call: its name, and the call with arguments that change nothing
 * should the kernel (or a filter) let it through. Returns the raw result;
 * errno holds the error. */

static long fd_result(long fd)
{   /* a descriptor it got is closed at once (errno kept) */
    if (fd >= 0) {
        int err = errno;
        close((int)fd);
        errno = err;
    }
    return fd;
}

static long call_bpf(void)
{   /* an unknown command: EINVAL once past the checks */
    return syscall(SYS_bpf, 1000, NULL, 0);
}

static long call_perf_event_open(void)
{   /* no attr: EFAULT once past the filter */
    return fd_result(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
}

static long call_userfaultfd(void)
{   /* every flag bit set: EINVAL */
    return fd_result(syscall(SYS_userfaultfd, -1));
}

static long call_io_uring_setup(void)
{   /* no entries, no params: EINVAL or EFAULT */
    return fd_result(syscall(SYS_io_uring_setup, 0, NULL));
}

static long call_open_by_handle_at(void)
{
    return fd_result(syscall(SYS_open_by_handle_at, -1, NULL, 0));
}

static long call_add_key(void)
{   /* no type: EFAULT, nothing added */
    return syscall(SYS_add_key, NULL, "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
}

static long call_keyctl(void)
{   /* an unknown operation: EOPNOTSUPP */
    return syscall(SYS_keyctl, -1, 0, 0, 0, 0);
}

static long call_request_key(void)
{   /* no type: EFAULT */
    return syscall(SYS_request_key, NULL, "probe", NULL, 0);
}

static long call_unshare(void)
{   /* a user namespace for this short-lived process only */
    return syscall(SYS_unshare, CLONE_NEWUSER);
}

static long call_setns(void)
{   /* no descriptor: EBADF */
    return syscall(SYS_setns, -1, 0);
}

static long call_mount(void)
{   /* nothing to mount: EFAULT or ENOENT */
    return syscall(SYS_mount, NULL, NULL, NULL, 0, NULL);
}

static long call_umount2(void)
{
    return syscall(SYS_umount2, "/nonexistent-probe-path", 0);
}

static long call_pivot_root(void)
{
    return syscall(SYS_pivot_root, "/nonexistent-probe-path", "/nonexistent-probe-path");
}

static long call_chroot(void)
{   /* chroot(2) looks the path up before it checks CAP_SYS_CHROOT: "/",
       the root it has, changes nothing */
    return syscall(SYS_chroot, "/");
}

static long call_reboot(void)
{   /* wrong magic numbers: EINVAL once past CAP_SYS_BOOT */
    return syscall(SYS_reboot, 0, 0, 0, NULL);
}

static long call_init_module(void)
{   /* an empty image: ENOEXEC */
    return syscall(SYS_init_module, NULL, 0, "");
}

static long call_finit_module(void)
{
    return syscall(SYS_finit_module, -1, "", 0);
}

static long call_delete_module(void)
{
    return syscall(SYS_delete_module, "probe_no_such_module", O_NONBLOCK);
}

static long call_kexec_load(void)
{   /* an unknown flag and too many segments: EINVAL (with no segments and
       no flags kexec_load(2) would unload a loaded kernel: never that) */
    return syscall(SYS_kexec_load, 0, 1000, NULL, 0x8000);
}

static long call_swapon(void)
{
    return syscall(SYS_swapon, "/nonexistent-probe-path", 0);
}

static long call_acct(void)
{   /* a path that does not exist: ENOENT (acct(NULL) would stop accounting) */
    return syscall(SYS_acct, "/nonexistent-probe-path");
}

static long call_clock_settime(void)
{   /* CLOCK_MONOTONIC cannot be set: EINVAL */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts);
}

static long call_settimeofday(void)
{   /* neither a time nor a zone: checks CAP_SYS_TIME, sets nothing */
    return syscall(SYS_settimeofday, NULL, NULL);
}

static long call_clone(void)
{   /* a child in a user namespace of its own, which exits at once */
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0)
        syscall(SYS_exit, 0);
    if (pid > 0) {
        int err = errno;
        waitpid((pid_t)pid, NULL, 0);
        errno = err;
    }
    return pid;
}

static long call_clone3(void)
{   /* no arguments: EINVAL once past the filter */
    return syscall(SYS_clone3, NULL, 0);
}

static long call_socket_vsock(void)
{
    return fd_result(syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0));
}

static long set_personality(unsigned long persona)
{   /* personality(2), put back as it was if it changed */
    long old = syscall(SYS_personality, 0xffffffffUL);
    long ret = syscall(SYS_personality, persona);
    if (ret >= 0) {
        int err = errno;
        syscall(SYS_personality, (unsigned long)old);
        errno = err;
    }
    return ret;
}

static long call_personality_linux32(void)
{
    return set_personality(PER_LINUX32);            /* 0x0008 */
}

static long call_personality_read_implies_exec(void)
{
    return set_personality(READ_IMPLIES_EXEC);      /* 0x400000 */
}

static const struct {
    const char *name;
    long (*call)(void);
} CALLS[] = {
    {"bpf", call_bpf},
    {"perf_event_open", call_perf_event_open},
    {"userfaultfd", call_userfaultfd},
    {"io_uring_setup", call_io_uring_setup},
    {"open_by_handle_at", call_open_by_handle_at},
    {"add_key", call_add_key},
    {"keyctl", call_keyctl},
    {"request_key", call_request_key},
    {"unshare", call_unshare},                      /* CLONE_NEWUSER */
    {"setns", call_setns},
    {"mount", call_mount},
    {"umount2", call_umount2},
    {"pivot_root", call_pivot_root},
    {"chroot", call_chroot},
    {"reboot", call_reboot},
    {"init_module", call_init_module},
    {"finit_module", call_finit_module},
    {"delete_module", call_delete_module},
    {"kexec_load", call_kexec_load},
    {"swapon", call_swapon},
    {"acct", call_acct},
    {"clock_settime", call_clock_settime},
    {"settimeofday", call_settimeofday},
    {"clone", call_clone},                          /* CLONE_NEWUSER */
    {"clone3", call_clone3},
    {"socket_vsock", call_socket_vsock},            /* socket(AF_VSOCK) */
    {"personality_0x0008", call_personality_linux32},
    {"personality_0x400000", call_personality_read_implies_exec},
};

static int probe_syscall(int argc, char **argv)
{
    size_t n = sizeof(CALLS) / sizeof(CALLS[0]);
    for (int i = 0; i < argc; i++) {
        size_t j;
        for (j = 0; j < n && strcmp(argv[i], CALLS[j].name); j++)
            ;
        if (j == n) {
            printf("%s=UNKNOWN\n", argv[i]);
            continue;
        }
        errno = 0;
        long ret = CALLS[j].call();
        result(argv[i], ret, errno);
        fflush(stdout);
    }
    return 0;
}

static int probe_tiocsti(const char *fd_text, const char *text)
{
    int fd = atoi(fd_text);
    for (const char *p = text; *p; p++) {
        char c = *p;
        if (c == '\\' && p[1] == 'n')
            c = '\n', p++;
        else if (c == '\\' && p[1] == '\\')
            p++;
        if (ioctl(fd, TIOCSTI, &c) < 0) {
            result("tiocsti", -1, errno);
            return 0;
        }
    }
    result("tiocsti", 0, 0);
    return 0;
}

static void try_socket(const char *name, int domain, int type, int protocol)
{
    long fd = socket(domain, type, protocol);
    int err = errno;
    result(name, fd_result(fd), err);
}

static int probe_packet(void)
{
    try_socket("packet", AF_PACKET, SOCK_RAW, 0);
    try_socket("inet_packet", AF_INET, SOCK_PACKET, 0);
    try_socket("raw_icmp", AF_INET, SOCK_RAW, IPPROTO_ICMP);
    try_socket("raw_udp", AF_INET, SOCK_RAW, IPPROTO_UDP);
    try_socket("raw_ip", AF_INET, SOCK_RAW, IPPROTO_RAW);
    try_socket("icmp_dgram", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    /* IP_HDRINCL on a raw ICMP socket (if one opens): the caller writes the
       whole IP header, its source address too (raw(7)) */
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), one = 1;
    if (fd < 0) {
        result("hdrincl", -1, errno);
    } else {
        long ret = setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one);
        result("hdrincl", ret, errno);
        close(fd);
    }
    /* and an option of another level with the same number, which must work */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    long ret = setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    result("tcp_cork", ret, errno);
    close(fd);
    return 0;
}

static int probe_ping(const char *address)
{
    /* icmp(7): the kernel fills in the identifier and the checksum of what
       a ping socket sends, and passes back only replies to it */
    struct sockaddr_in to = {.sin_family = AF_INET};
    struct icmphdr echo = {.type = ICMP_ECHO};
    char reply[1500];
    if (inet_pton(AF_INET, address, &to.sin_addr) != 1) {
        fprintf(stderr, "probe ping: not an IPv4 address: %s\n", address);
        return 2;
    }
    echo.un.echo.sequence = htons(1);
    int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (fd < 0) {
        result("ping", -1, errno);
        return 0;
    }
    if (sendto(fd, &echo, sizeof echo, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        result("ping", -1, errno);
        close(fd);
        return 0;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int ready = poll(&p, 1, 2000);
        if (ready <= 0) {
            result("ping", -1, ready == 0 ? ETIMEDOUT : errno);
            break;
        }
        ssize_t n = recv(fd, reply, sizeof reply, 0);
        if (n < 0) {
            result("ping", -1, errno);
            break;
        }
        if (n >= (ssize_t)sizeof echo && ((struct icmphdr *)reply)->type == ICMP_ECHOREPLY) {
            result("ping", 0, 0);
            break;
        }
    }
    close(fd);
    return 0;
}

static int probe_sid(void)
{
    int tty_nr = -1;
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f && fgets(buf, sizeof buf, f)) {
        char *p = strrchr(buf, ')');        /* after the command's name */
        /* ") state ppid pgrp session tty_nr" */
        if (p)
            sscanf(p + 2, "%*c %*d %*d %*d %d", &tty_nr);
    }
    if (f)
        fclose(f);
    printf("pid=%d\nppid=%d\nsid=%ld\npgrp=%d\ntty_nr=%d\n", getpid(), getppid(),
           (long)getsid(0), getpgrp(), tty_nr);
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
    int err = errno;
    result("dev_tty", fd_result(fd), err);
    return 0;
}

static int probe_keyring(void)
{
    long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
    if (id >= 0)
        printf("session_keyring=%ld\n", id);
    else
        result("session_keyring", -1, errno);
    id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
    if (id >= 0)
        printf("user_keyring=%ld\n", id);
    else
        result("user_keyring", -1, errno);
    return 0;
}

static int probe_readkey(const char *serial)
{
    char buf[4096];
    long n = syscall(SYS_keyctl, KEYCTL_READ, atol(serial), buf, sizeof buf - 1);
    if (n < 0) {
        result("readkey", -1, errno);
        return 0;
    }
    buf[n < (long)sizeof buf - 1 ? n : (long)sizeof buf - 1] = 0;
    printf("readkey=OK:%s\n", buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "syscall"))
        return probe_syscall(argc - 2, argv + 2);
    if (argc == 4 && !strcmp(argv[1], "tiocsti"))
        return probe_tiocsti(argv[2], argv[3]);
    if (argc == 2 && !strcmp(argv[1], "packet"))
        return probe_packet();
    if (argc == 3 && !strcmp(argv[1], "ping"))
        return probe_ping(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "sid"))
        return probe_sid();
    if (argc == 2 && !strcmp(argv[1], "keyring"))
        return probe_keyring();
    if (argc == 3 && !strcmp(argv[1], "readkey"))
        return probe_readkey(argv[2]);
    fprintf(stderr, "usage: probe syscall NAME... | tiocsti FD TEXT | packet | ping ADDRESS | sid | keyring"
                    " | readkey SERIAL\n");
    return 2;
}
