"""Exit 0 when pip-audit's data source (PyPI's per-release JSON, with its `vulnerabilities`
field) answers for a release we know exists; otherwise print why and exit 1."""

import json
import sys
import urllib.error
import urllib.request
from importlib.metadata import version

URL = f"https://pypi.org/pypi/pip/{version('pip')}/json"

try:
    with urllib.request.urlopen(URL, timeout=20) as response:
        document = json.load(response)
except (urllib.error.URLError, OSError, ValueError) as exc:
    print(f"advisory data unreachable: GET {URL} -> {exc}", file=sys.stderr)
    sys.exit(1)
if "vulnerabilities" not in document:
    print(f"advisory data missing: {URL} has no 'vulnerabilities' field", file=sys.stderr)
    sys.exit(1)
print(f"advisory data reachable: {URL}")
