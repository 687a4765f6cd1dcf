#!/usr/bin/python3
"""Render a "## template: jinja" file with cloud-init's own jinja handler code
and instance data, and print the result: the reference for the Go Render tests.
Usage: jinja_oracle.py TEMPLATE INSTANCE_DATA_JSON > rendered"""
import json
import sys

from cloudinit.handlers.jinja_template import render_jinja_payload

with open(sys.argv[1], newline="") as f:
    payload = f.read()
with open(sys.argv[2]) as f:
    data = json.load(f)
sys.stdout.write(render_jinja_payload(payload, sys.argv[1], data))
