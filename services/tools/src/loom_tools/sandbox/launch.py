"""Runs OUTSIDE the sandbox, between the service and bubblewrap (stdlib only, `python -I -S`).

Usage: python -I -S -c <this source> UID CPU_S MEMORY_MB MAX_PROCESSES MAX_FILE_MB -- COMMAND...
Sets the rlimits, switches to UID (when not 0), then execs COMMAND, so limits and uid hold
for bubblewrap and everything it starts.

Why a launcher instead of `preexec_fn` or Popen's `user=`: either makes CPython fork() the
threaded service, and gRPC's fork handlers then crash the child (SIGSEGV in cygrpc, seen
here in about 1 run in 4). Without them CPython uses vfork(), which runs no fork handlers.
"""

import os
import resource
import sys


def main():
    uid, cpu_s, memory_mb, max_processes, max_file_mb = (int(a) for a in sys.argv[1:6])
    assert sys.argv[6] == "--"
    command = sys.argv[7:]
    if memory_mb:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
