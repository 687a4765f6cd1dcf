#!/usr/bin/python3
"""Build MIME user data that cloud-init's tools cannot: nested multiparts,
quoted-printable parts, Launch-Index headers and a message/rfc822 wrapper.
Uses only Python's email package (the parser cloud-init itself uses).
Usage: mkmime.py KIND > output   (KIND: nested | qp | launch-index | rfc822)"""
import sys
from email import charset, message_from_string
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText


def src(name):
    with open("src/" + name) as f:
        return f.read()


def attach(outer, text, subtype, filename=None, cte=None):
    if cte == "qp":
        cs = charset.Charset("utf-8")
        cs.body_encoding = charset.QP
        part = MIMEText(text, subtype, cs)
    else:
        part = MIMEText(text, subtype)
    if filename:
        part.add_header("Content-Disposition", "attachment", filename=filename)
    outer.attach(part)
    return part


kind = sys.argv[1]
outer = MIMEMultipart(boundary="OUTER-BOUNDARY")
if kind == "nested":
    inner = MIMEMultipart(boundary="INNER-BOUNDARY")
    attach(inner, src("config.yaml"), "cloud-config", "inner-config.yaml")
    attach(inner, src("script.sh"), "x-shellscript")  # no filename: part-NNN
    attach(outer, src("boot.sh"), "cloud-boothook", "outer-boot.sh")
    outer.attach(inner)
    attach(outer, src("perboot.sh"), "x-shellscript-per-boot", "outer-perboot.sh")
elif kind == "qp":
    long = "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: \"" + \
        "caf\u00e9 = tea " * 20 + "\"\n"
    attach(outer, long, "cloud-config", "qp-config.yaml", cte="qp")
    attach(outer, src("utf8.sh"), "x-shellscript", "qp-utf8.sh", cte="qp")
elif kind == "launch-index":
    p = attach(outer, src("script.sh"), "x-shellscript", "for-index-0.sh")
    p.add_header("Launch-Index", "0")
    p = attach(outer, src("perboot.sh"), "x-shellscript", "for-index-1.sh")
    p.add_header("Launch-Index", "1")
    attach(outer, src("config.yaml"), "cloud-config", "for-all.yaml")
    attach(outer, "#cloud-config\nlaunch-index: 1\nruncmd: [true]\n",
           "cloud-config", "payload-index-1.yaml")
elif kind == "rfc822":
    inner = MIMEMultipart(boundary="INNER-BOUNDARY")
    attach(inner, src("script.sh"), "x-shellscript", "wrapped.sh")
    outer.attach(MIMEMessage(inner))
    attach(outer, src("config.yaml"), "cloud-config", "after.yaml")
else:
    sys.exit("unknown kind " + kind)
sys.stdout.write(outer.as_string())
