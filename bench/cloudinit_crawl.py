"""cloud-init's own Ec2 metadata crawl, for bench/metadata-vs-cloudinit.sh.

Run with the python3 of a rootfs where Debian's cloud-init is installed:
    python3 cloudinit_crawl.py MODE URL
MODE helper:     one IMDSv2 token PUT, then cloud-init's
                 cloudinit.sources.helpers.ec2.get_instance_metadata() over
                 the 2021-03-23 meta-data tree (what the datasource calls).
MODE datasource: DataSourceEc2.crawl_metadata() as on AWS (platform set to
                 aws, which DMI would say on EC2): token, API version probe,
                 user-data, meta-data tree, identity documents.
Prints the crawl's own time in ms (imports and interpreter start excluded)
and the number of meta-data leaves it read.
"""

import sys
import tempfile
import time

from cloudinit import distros, helpers
from cloudinit import url_helper as uh
from cloudinit.sources import DataSourceEc2
from cloudinit.sources.helpers import ec2

API_VERSION = "2021-03-23"


def leaves(tree):
    if isinstance(tree, dict):
        return sum(leaves(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(leaves(v) for v in tree)
    return 1


def helper(url):
    token = uh.readurl(
        url + "/latest/api/token",
        request_method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
    ).contents.decode()
    headers = {"X-aws-ec2-metadata-token": token}
    return ec2.get_instance_metadata(
        api_version=API_VERSION,
        metadata_address=url,
        headers_cb=lambda _url: headers,
    )


def datasource(url):
    tmp = tempfile.mkdtemp()
    paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp})
    distro = distros.fetch("debian")("debian", {}, paths)
    sys_cfg = {
        "datasource": {
            "Ec2": {"metadata_urls": [url], "timeout": 5, "max_wait": 10}
        }
    }
    ds = DataSourceEc2.DataSourceEc2(sys_cfg, distro, paths)
    ds._cloud_name = "aws"
    crawled = ds.crawl_metadata()
    if not crawled:
        raise SystemExit("crawl_metadata returned nothing")
    return crawled["meta-data"]


def main():
    mode, url = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    md = {"helper": helper, "datasource": datasource}[mode](url)
    ms = (time.perf_counter() - start) * 1000
    print("%.2f %d" % (ms, leaves(md)))


if __name__ == "__main__":
    main()
