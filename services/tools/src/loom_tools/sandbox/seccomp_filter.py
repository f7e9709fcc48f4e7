"""The seccomp filter bubblewrap installs on user code (`bwrap --seccomp FD`), built once.

Allow by default, refuse (EPERM, so code sees an ordinary error) what no code tool needs and
what widens the kernel surface a sandbox escape would start from: new namespaces (unshare,
setns, clone with a CLONE_NEW* flag; clone3 answers ENOSYS so libc falls back to clone, whose
flags can be inspected), mounts, ptrace and cross-process memory access, keyrings, BPF, perf
events, userfaultfd, io_uring, module and kexec loading, clock and swap changes, and the
terminal-injection ioctls. Built with libseccomp (`pyseccomp`, ctypes over the system's
libseccomp.so.2); without it the sandbox counts as degraded (runner.py).
"""

from __future__ import annotations

import errno
import tempfile

CLONE_NEW_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
                   | 0x00000080)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
TIOCSTI, TIOCLINUX = 0x5412, 0x541C

REFUSED = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsmount", "fsconfig", "fspick", "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl", "open_by_handle_at",
    "name_to_handle_at", "iopl", "ioperm", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
    "vhangup", "uselib", "personality", "lookup_dcookie", "fanotify_init",
)


def build_bpf() -> bytes:
    """The compiled filter (classic BPF for this architecture); ImportError/OSError without libseccomp."""
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    for name in REFUSED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # a syscall this architecture or libseccomp does not know
    for flag in _bits(CLONE_NEW_FLAGS):
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(sc.ERRNO(errno.EPERM), "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def _bits(mask: int) -> list[int]:
    return [1 << i for i in range(mask.bit_length()) if mask >> i & 1]
