#!/bin/sh
echo "café ☕ non-ASCII script"
