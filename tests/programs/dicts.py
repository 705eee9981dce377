# SPDX-License-Identifier: MIT
# CPython building large dicts and lists, then reading them back: the output is a
# digest of everything it built, the same under any memory budget.
import hashlib

d = {}
for i in range(600000):
    d[i] = str(i) * 3
squares = [x * x for x in range(1500000)]
words = {str(i): [i, i * 2, str(i)[::-1]] for i in range(200000)}
h = hashlib.sha256()
for k in range(0, 600000, 7):
    h.update(d[k].encode())
h.update(str(sum(squares)).encode())
h.update(str(sum(v[1] for v in words.values())).encode())
print(len(d), len(squares), len(words), h.hexdigest())
