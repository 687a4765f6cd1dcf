#!/bin/bash
echo "runs every boot"
