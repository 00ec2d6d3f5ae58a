#!/usr/bin/env python3
"""Checks the digests of ami events, with nothing but Python's standard library.

Reads from stdin {"events": [event, ...]}: the events of
GET /api/v1/dossiers/{id}/history, or the items of GET /api/v1/events, in
order. For each event, digest = sha256(previous digest of its dossier, hex +
canonical(content)), the first event of a dossier chaining on 64 zeros; and
where the global chain is shown, global_digest = sha256(previous
global_digest, hex + digest, hex) for consecutive global_seq (global_seq 1
chaining on 64 zeros). Prints one line per event; exits 1 at the first
mismatch, 0 when every event checks.
"""
import hashlib
import json
import sys

GENESIS = "0" * 64


def canonical(obj):
    # RFC 8785 (JSON Canonicalization Scheme). For ami's events json.dumps
    # gives the same bytes: there are no floats (every number is an integer
    # below 2**53, written as its digits), keys are ASCII (so code-point
    # order is RFC 8785's UTF-16 order), and with ensure_ascii=False strings
    # are escaped as RFC 8785 escapes them (quote, backslash and control
    # characters only, \u00xx in lower case) and otherwise kept as UTF-8.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fail(message):
    print("MISMATCH " + message)
    sys.exit(1)


def main():
    events = json.loads(sys.stdin.buffer.read().decode("utf-8"))["events"]
    last = {}  # dossier id -> (seq, digest)
    global_digests = {0: GENESIS}  # global_seq -> global_digest
    for event in events:
        dossier, seq = event["dossier_id"], event["seq"]
        where = "dossier %s seq %s" % (dossier, seq)
        previous_seq, previous = last.get(dossier, (0, GENESIS))
        if seq != previous_seq + 1:
            fail("%s: follows seq %s (the chain needs every event of the dossier, in order)"
                 % (where, previous_seq))
        digest = sha256_hex(previous + canonical(event["content"]))
        if digest != event["digest"]:
            fail("%s: digest %s, computed %s" % (where, event["digest"], digest))
        last[dossier] = (seq, digest)
        line = "ok %s digest %s" % (where, digest)
        g = event.get("global_seq")
        if g is not None and event.get("global_digest") is not None:
            if g - 1 in global_digests:
                expected = sha256_hex(global_digests[g - 1] + digest)
                if expected != event["global_digest"]:
                    fail("%s: global_seq %s global_digest %s, computed %s"
                         % (where, g, event["global_digest"], expected))
                line += " global %s ok" % g
            else:
                line += " global %s (previous not given)" % g
            global_digests[g] = event["global_digest"]
        print(line)


if __name__ == "__main__":
    main()
