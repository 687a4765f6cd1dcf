echo "this script has no shebang"
