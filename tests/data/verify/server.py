#!/usr/bin/env python3
"""A local HTTPS service for the verify tests (C and CLI).

usage: server.py DIR

Makes a throw-away self-signed certificate for localhost / 127.0.0.1 in
DIR (cert.pem, key.pem) with the openssl command, listens on 127.0.0.1 on a
free port, prints the port on one line and serves until its standard input
closes (so it never outlives the test that started it) or 120 s pass.

Every request is appended to DIR/requests.jsonl as one JSON object: time
(monotonic seconds), method, path, query, headers (names lower-cased), body
and inflight (requests to the same path being handled at that moment, this
one included; a request stops counting just before its answer is sent).

Paths:
  /live                 200 {"ok": true, "login": "keyhog-test"}
  /revoked              401
  /status/N             status N (429 and 503 carry Retry-After: 0)
  /retry-after/N        429 with Retry-After: N
  /flaky/ID             503 (Retry-After: 0) the first time for ID, then 200
  /json                 200 {"ok": B}, B true iff "good" is in the
                        Authorization header or the query
  /slow                 200 after 0.2 s
  /hang                 200 after 3 s
  /redirect/away        302 to https://evil.invalid/steal
  /redirect/local       302 to /live
  /sts                  AWS SigV4 checked against the key table below:
                        200 GetCallerIdentity answer if the signature is
                        right, 403 otherwise
"""
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AWS_KEYS = {"KHTSKEYHOGTEST000001": "KeyhogTestSecretKey/a8Xk2Lq9Zr4Tn7Wp1Yd+"}

_lock = threading.Lock()
_inflight = {}  # path -> requests being handled
_seen = set()


def _quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def sigv4_ok(method, path, query, headers, body):
    """An independent SigV4 check, from AWS's description of the scheme."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key_id, date, region, service, term = parts["Credential"].split("/")
    secret = AWS_KEYS.get(key_id)
    if secret is None or term != "aws4_request":
        return False
    signed = parts["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return False
    pairs = sorted((_quote(urllib.parse.unquote(k)), _quote(urllib.parse.unquote(v)))
                   for k, _, v in (p.partition("=") for p in query.split("&") if p))
    canon = "\n".join([
        method,
        _quote(urllib.parse.unquote(path)).replace("%2F", "/"),
        "&".join(f"{k}={v}" for k, v in pairs),
        "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed),
        ";".join(signed),
        hashlib.sha256(body).hexdigest(),
    ])
    amz_date = headers.get("x-amz-date", "")
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{date}/{region}/{service}/aws4_request",
                         hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for m in (date, region, service, "aws4_request"):
        k = hmac.new(k, m.encode(), hashlib.sha256).digest()
    want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts["Signature"]) and amz_date.startswith(date)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body=b"", headers=()):
        # Leaves the in-flight count before the answer goes out, so a
        # client that starts its next request on receipt is never counted
        # twice.
        self._leave()
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._path = url.path
        with _lock:
            _inflight[url.path] = _inflight.get(url.path, 0) + 1
            self._counted = True
            record = {"time": time.monotonic(), "method": self.command, "path": url.path,
                      "query": url.query, "headers": headers,
                      "body": body.decode("utf-8", "replace"),
                      "inflight": _inflight[url.path]}
            with open(self.server.log_path, "a") as log:
                log.write(json.dumps(record) + "\n")
        try:
            self._route(url, headers, body)
        finally:
            self._leave()

    def _leave(self):
        with _lock:
            if getattr(self, "_counted", False):
                _inflight[self._path] -= 1
                self._counted = False

    def _route(self, url, headers, body):
        p = url.path
        if p == "/live":
            return self._answer(200, {"ok": True, "login": "keyhog-test"})
        if p == "/revoked":
            return self._answer(401, {"message": "Bad credentials"})
        if p.startswith("/status/"):
            code = int(p.split("/")[2])
            extra = [("Retry-After", "0")] if code in (429, 503) else []
            return self._answer(code, b"status", extra)
        if p.startswith("/retry-after/"):
            return self._answer(429, b"slow down", [("Retry-After", p.split("/")[2])])
        if p.startswith("/flaky/"):
            with _lock:
                first = p not in _seen
                _seen.add(p)
            if first:
                return self._answer(503, b"try again", [("Retry-After", "0")])
            return self._answer(200, {"ok": True})
        if p == "/json":
            good = "good" in headers.get("authorization", "") + url.query
            return self._answer(200, {"ok": good})
        if p == "/slow":
            time.sleep(0.2)
            return self._answer(200, {"ok": True})
        if p == "/hang":
            time.sleep(3)
            return self._answer(200, {"ok": True})
        if p == "/redirect/away":
            return self._answer(302, b"", [("Location", "https://evil.invalid/steal")])
        if p == "/redirect/local":
            return self._answer(302, b"", [("Location", "/live")])
        if p == "/sts":
            if sigv4_ok(self.command, p, url.query, headers, body):
                return self._answer(200, b"<GetCallerIdentityResponse><Arn>arn:aws:iam::"
                                         b"000000000000:user/keyhog-test</Arn>"
                                         b"</GetCallerIdentityResponse>")
            return self._answer(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
        return self._answer(404, b"no such path")

    do_GET = do_POST = do_HEAD = do_PUT = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out on /hang close early; that is expected


def main():
    d = sys.argv[1]
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = Server(("127.0.0.1", 0), Handler)
    server.log_path = os.path.join(d, "requests.jsonl")
    open(server.log_path, "w").close()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    deadline = time.monotonic() + 120

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    while time.monotonic() < deadline:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    main()
