"""Container health: NATS's monitoring endpoint says the server and JetStream are up."""

import sys
import urllib.request

try:
    with urllib.request.urlopen(
        "http://127.0.0.1:8222/healthz?js-enabled-only=true", timeout=2
    ) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
