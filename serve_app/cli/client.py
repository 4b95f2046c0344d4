"""The ingress's routes over HTTP, for the `smmf` commands: the standard library's client, not
httpx (importing httpx alone, about 150 ms, was half of what `smmf model list` took)."""

import http.client
import json
import urllib.parse
from typing import NamedTuple, Optional

# A connection that does not open in this long is an ingress that is not there; a management
# call may wait for its model to load (apply_timeout_s, at most an hour).
CONNECT_S, READ_S = 10.0, 3700.0


class Answer(NamedTuple):
    status_code: int
    content_type: str
    text: str

    def json(self):
        return json.loads(self.text)


class IngressClient:
    """The ingress's management, status and batch routes."""

    def __init__(self, address: str, api_key: Optional[str]):
        self.address, url = address, urllib.parse.urlsplit(address)
        self.connection = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.host, self.port, self.prefix = url.hostname, url.port, url.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def send(self, method: str, path: str, body: Optional[dict] = None) -> Answer:
        conn = self.connection(self.host, self.port, timeout=CONNECT_S)
        headers = dict(self.headers)
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        try:
            conn.connect()
            conn.sock.settimeout(READ_S)
            conn.request(method, self.prefix + path, body=data, headers=headers)
            r = conn.getresponse()
            return Answer(r.status, r.getheader("content-type", ""), r.read().decode(errors="replace"))
        except (OSError, http.client.HTTPException) as exc:
            raise SystemExit(f"error: cannot reach the smmf-serve ingress at {self.address}: {exc}") from None
        finally:
            conn.close()

    def request(self, method: str, path: str, body: Optional[dict] = None):
        r = self.send(method, path, body)
        if r.status_code >= 400:
            raise SystemExit(f"error: {r.status_code}: {message_of(r)}")
        return r.json()

    def statuses(self) -> dict[str, dict]:
        return {m["model"]: m for m in self.request("GET", "/api/models/status")}


def message_of(r: Answer) -> str:
    """The error text of any of the ingress's error shapes (OpenAI's, FastAPI's, DB-GPT's)."""
    try:
        body = r.json()
    except ValueError:
        return r.text
    if not isinstance(body, dict):
        return str(body)
    error = body.get("error")
    return (error.get("message") if isinstance(error, dict) else None) or body.get("detail") or body.get("message") or r.text
