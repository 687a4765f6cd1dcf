#!/bin/sh
# Regenerates inputs/ (real user data made by cloud-init's and cloud-image-utils'
# own tools) and golden/ (what cloud-init's processor makes of each input).
# Needs: apt-get install -y cloud-init cloud-image-utils   (Debian 12: cloud-init 22.4.2)
# Run from this directory: ./generate.sh
# MIME boundaries and gzip timestamps are random, so outputs differ byte-wise
# from run to run; the golden files always match the inputs they were made with.
set -eu
PY=/usr/bin/python3  # the interpreter cloud-init is installed for
cd "$(dirname "$0")"
rm -rf inputs golden build && mkdir -p inputs golden build

# cloud-init devel make-mime (every part base64, charset utf-8)
cloud-init devel make-mime -a src/config.yaml:cloud-config -a src/script.sh:x-shellscript \
  -a src/boot.sh:cloud-boothook > inputs/make-mime-basic.txt
cloud-init devel make-mime --force -a src/config.yaml:cloud-config -a src/script.sh:x-shellscript \
  -a src/boot.sh:cloud-boothook -a src/perboot.sh:x-shellscript-per-boot -a src/jinja.txt:jinja2 \
  -a src/archive.yaml:cloud-config-archive -a src/handler.py:part-handler \
  -a src/utf8.sh:x-shellscript -a src/noheader.sh:plain > inputs/make-mime-all.txt
cloud-init devel make-mime -a src/include.txt:x-include-url -a src/script.sh:x-shellscript \
  > inputs/make-mime-include.txt

# write-mime-multipart (cloud-image-utils): 7bit text parts, base64 for non-text types
write-mime-multipart src/config.yaml src/script.sh src/boot.sh src/noheader.sh src/handler.py \
  src/archive.yaml > inputs/wmm-autodetect.txt
write-mime-multipart src/config.yaml:text/x-shellscript src/script.sh:application/octet-stream \
  src/noheader.sh:text/x-shellscript > inputs/wmm-explicit.txt
write-mime-multipart --gzip -o inputs/wmm-gzip.txt.gz src/config.yaml src/script.sh
gzip -9n -c src/config.yaml > build/config.yaml.gz
gzip -9n -c src/script.sh > build/script.sh.gz
write-mime-multipart build/config.yaml.gz:application/x-gzip build/script.sh.gz:application/gzip \
  > inputs/wmm-gzparts.txt
write-mime-multipart src/config.yaml src/boot.sh | sed 's/$/\r/' > inputs/wmm-crlf.txt

# CRLF line endings throughout (headers, boundaries and base64 lines)
sed 's/$/\r/' inputs/make-mime-basic.txt > inputs/make-mime-crlf.txt

# Python's email package (what cloud-init parses with): shapes the tools above cannot make
for k in nested qp launch-index rfc822; do $PY mkmime.py $k > inputs/$k.txt; done
cp src/quirks.txt inputs/quirks.txt

# Single-part (not MIME) user data, as users paste it into the console
for f in config.yaml script.sh boot.sh noheader.sh handler.py archive.yaml archive-full.yaml \
  jinja.txt jinja-config.yaml jinja-crlf.txt include.txt utf8.sh; do cp src/$f inputs/single-$f; done
gzip -9n -c src/script.sh > inputs/single-script.sh.gz
: > inputs/empty.txt
printf '\357\273\277' | cat - src/config.yaml > inputs/bom-config.yaml
printf '\357\273\277' | cat - src/script.sh > inputs/bom-script.sh
sed 's/$/\r/' src/config.yaml > inputs/crlf-config.yaml
sed 's/$/\r/' src/script.sh > inputs/crlf-script.sh
printf '\n\n    #!/bin/sh\n    echo indented heredoc\n' > inputs/indented-script.sh

# The reference: cloud-init's processor, on every input without #include
# (it would fetch the URLs).
for f in inputs/*; do
  case "$f" in *include*) continue ;; esac
  $PY oracle.py "$f" > "golden/$(basename "$f").json"
done

# The reference for templates: cloud-init's jinja handler, with made-up EC2 instance data.
mkdir -p golden/jinja
for f in jinja.txt jinja-config.yaml jinja-crlf.txt; do
  $PY jinja_oracle.py src/$f src/instance-data.json > golden/jinja/$f.rendered
done
rm -rf build
