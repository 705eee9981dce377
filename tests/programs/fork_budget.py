# SPDX-License-Identifier: MIT
# Two children forked without exec work through the 96 MiB their parent built before the
# fork (reading it all, three times: CPython's reference counts write to every object
# touched, so each child comes to copy much of it). Prints whether every child and the
# parent still see the same data. With a path argument, once the children are done (and
# still alive) and the memory has had a second to settle, writes there the anonymous
# memory the three hold together: Pss_Anon summed, in kB.
import hashlib
import os
import sys
import time

blocks = [bytes([i % 251]) * 4088 + i.to_bytes(8, "little") for i in range(24576)]


def digest():
    h = hashlib.sha256()
    for b in blocks:
        h.update(b)
    return h.hexdigest()


def pss_anon_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            total += sum(int(line.split()[1]) for line in f if line.startswith("Pss_Anon:"))
    return total


want = digest()
done_r, done_w = os.pipe()
go_r, go_w = os.pipe()
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        os.close(done_r)
        os.close(go_w)
        same = all(digest() == want for _ in range(3))
        os.write(done_w, b"y" if same else b"n")
        os.read(go_r, 1)  # stays alive, holding its memory, until the parent has looked
        os._exit(0)
    children.append(pid)
os.close(done_w)
os.close(go_r)
answers = b""
while len(answers) < len(children):
    answers += os.read(done_r, len(children) - len(answers))
time.sleep(1)
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as out:
        out.write(f"{pss_anon_kb([os.getpid()] + children)}\n")
os.close(go_w)
for pid in children:
    os.waitpid(pid, 0)
print("children", answers.decode(), "parent", "y" if digest() == want else "n")
