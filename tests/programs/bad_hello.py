# SPDX-License-Identifier: MIT
# Says hello to a running `uzswap run` (its pid in argv[1], or "inside": run as its program)
# as a process that is not one of its agents would: once with a wrong magic number, once
# with the right one but a pipe where the userfaultfd should be, once in the name of
# another process (pid 1: uzswap would read and fill that one's memory), each with a pipe
# attached. Prints what uzswap answered each time, and how many of the pipes it was sent it
# still holds; inside, also its agents_refused. (Only the program's own processes get as
# far as the descriptor: from outside, all three are refused alike.)
import os
import socket
import struct
import sys




sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from agent_magic import protocol_magic  # noqa: E402

MAGIC = protocol_magic()
inside = sys.argv[1] == "inside"
uz = os.getppid() if inside else int(sys.argv[1])


sent = []


def held():
    links = set()
    for fd in os.listdir(f"/proc/{uz}/fd"):
        try:
            links.add(os.readlink(f"/proc/{uz}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return sum(f"pipe:[{ino}]" in links for ino in sent)


def hello(magic, pid=None):
    r, w = os.pipe()
    sent.append(os.fstat(r).st_ino)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(f"\0uzswap-agent-{uz}")
    # struct agent_hello: magic, pid, fork_parent, staging_slots, staging, stack, stack_len,
    # forked_after_ns
    msg = struct.pack("=IiiIQQQQ", magic, pid or os.getpid(), 0, 1024, 1 << 30, 2 << 30, 4096, 0)
    try:
        s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", r))])
    except BrokenPipeError:
        pass  # refused before it had its say: the answer is there all the same
    answer = s.recv(4)
    s.close()
    os.close(r)
    os.close(w)
    return struct.unpack("i", answer)[0] if len(answer) == 4 else None


wrong_magic = hello(0x12345678)
not_a_uffd = hello(MAGIC)
impostor = hello(MAGIC, pid=1)


def refused():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(f"\0uzswap-stat-{uz}")
    text = b""
    while chunk := s.recv(65536):
        text += chunk
    return [line for line in text.decode().splitlines() if line.startswith("agents_refused")]


print("wrong_magic", wrong_magic, "not_a_uffd", not_a_uffd, "impostor", impostor,
      "kept_fds", held(), *(refused() if inside else []))
