# SPDX-License-Identifier: MIT
"""AGENT_MAGIC as src/agent/agent_proto.h defines it, for the tests that say hello as a
stranger would: a new protocol version keeps their hellos well-formed (right magic) where
they are meant to be."""
import os


def protocol_magic():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "../src/agent/agent_proto.h")) as f:
        for line in f:
            if line.startswith("#define AGENT_MAGIC "):
                return int(line.split()[2].rstrip("uU"), 16)
    raise SystemExit("AGENT_MAGIC not found")
