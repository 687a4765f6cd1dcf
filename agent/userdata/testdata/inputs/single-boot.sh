#cloud-boothook
#!/bin/sh
echo "boothook ran" >> /var/log/boothook.log
