# SPDX-License-Identifier: MIT
# The CPython workload of bench/README.md (transparent mode): a 1.5M-entry dict and a
# 3M-element list, about 370 MB native.
import sys
d = {}
for i in range(1500000):
    d[i] = str(i) * 3
l = [x * 2 for x in range(3000000)]
print(len(d), sum(len(v) for v in d.values()), sum(l) % 1000003)
