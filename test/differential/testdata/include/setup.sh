#!/bin/sh
echo "included script ran as ${0##*/}" > /root/included-script.txt
