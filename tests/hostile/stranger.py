# SPDX-License-Identifier: MIT
# Another user's process on a root `uzswap run`'s sockets (run as nobody; argv[1]: uzswap's
# pid): says hello as an agent would, in its own name, with a userfaultfd of its own (a
# pipe where none can be made), and asks for the run's figures. Prints what uzswap
# answered to each, then keeps its end of the hello open for HOLD seconds (argv[2]), as a
# process that was accepted would keep the run going.
import ctypes
import os
import socket
import struct
import sys
import time




sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from agent_magic import protocol_magic  # noqa: E402

MAGIC = protocol_magic()
SYS_userfaultfd = 323  # x86_64
UFFD_USER_MODE_ONLY = 1
uz = int(sys.argv[1])
hold = float(sys.argv[2])


def descriptor():
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(SYS_userfaultfd, os.O_CLOEXEC | UFFD_USER_MODE_ONLY)
    if fd >= 0:
        return fd, "userfaultfd"
    r, w = os.pipe()
    os.close(w)
    return r, "pipe"


def hello():
    fd, kind = descriptor()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(f"\0uzswap-agent-{uz}")
    # struct agent_hello: magic, pid, fork_parent, staging_slots, staging, stack, stack_len,
    # forked_after_ns
    msg = struct.pack("=IiiIQQQQ", MAGIC, os.getpid(), 0, 1024, 1 << 30, 2 << 30, 4096, 0)
    try:
        s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
    except BrokenPipeError:
        pass  # answered and let go before it had its say: the answer is still there
    s.settimeout(10)
    answer = s.recv(4)
    return s, kind, struct.unpack("i", answer)[0] if len(answer) == 4 else None


def stat():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(f"\0uzswap-stat-{uz}")
    s.settimeout(10)
    got = 0
    while True:
        b = s.recv(65536)
        if not b:
            return got
        got += len(b)


sock, kind, answer = hello()
print(f"hello_with {kind} answer {answer} stat_bytes {stat()}", flush=True)
time.sleep(hold)
sock.close()
