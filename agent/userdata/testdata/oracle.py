#!/usr/bin/python3
"""Run cloud-init's own user-data processor on an input file and print what it
hands to its part handlers: one JSON object per attached part, in order.
This is the reference the Go golden tests compare against.
Usage: oracle.py INPUT > golden.json   (needs the cloud-init Debian package)"""
import base64
import json
import sys
import tempfile

from cloudinit import helpers, user_data, util

tmp = tempfile.mkdtemp()
paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp})
with open(sys.argv[1], "rb") as f:
    raw = f.read()
msg = user_data.UserDataProcessor(paths).process(raw)
parts = []
for part in msg.walk():
    if user_data.is_skippable(part):
        continue
    payload = util.fully_decoded_payload(part)
    if payload is None:
        payload = b""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogateescape")
    parts.append({
        "filename": part.get_filename(),
        "content_type": part.get_content_type(),
        "launch_index": part.get("Launch-Index"),
        "body": base64.b64encode(payload).decode(),
    })
json.dump(parts, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
