#!/bin/sh
echo "hello from a user script" > /tmp/ec2init-script
