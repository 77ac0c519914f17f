"""Container health: the S3 port answers HTTP (any status: auth is checked by clients)."""

import http.client
import sys

try:
    connection = http.client.HTTPConnection("127.0.0.1", 8333, timeout=2)
    connection.request("GET", "/")
    connection.getresponse()
except OSError:
    sys.exit(1)
