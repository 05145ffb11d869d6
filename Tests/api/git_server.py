"""A git smart-HTTP server over HTTPS for the tests: `git http-backend` behind a handler that
demands `Authorization: Basic x-access-token:TOKEN` and records every request (method, path, and
whether its token was right), as a private repository host does."""
import base64
import http.server
import ssl
import subprocess
import threading
from pathlib import Path


class GitServer:
    def __init__(self, root: Path, token: str, cert: Path, key: Path):
        self.root = root
        self.token = token
        self.seen: list = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.serve()

            def do_POST(self):
                self.serve()

            def serve(self):
                expected = "Basic " + base64.b64encode(f"x-access-token:{server.token}".encode()).decode()
                authorized = self.headers.get("authorization") == expected
                server.seen.append((self.command, self.path, authorized))
                if not authorized:
                    self.send_response(401)
                    self.send_header("www-authenticate", 'Basic realm="git"')
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                env = {"GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query,
                       "REQUEST_METHOD": self.command, "CONTENT_TYPE": self.headers.get("content-type", ""),
                       "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "agent", "REMOTE_ADDR": "127.0.0.1",
                       "HTTP_CONTENT_ENCODING": self.headers.get("content-encoding", ""),
                       "GIT_PROTOCOL": self.headers.get("git-protocol", ""), "PATH": "/usr/bin:/bin"}
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60).stdout
                head, _, rest = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.split(b"\r\n"):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(rest)))
                self.end_headers()
                self.wfile.write(rest)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def make_repository(root: Path, name: str) -> Path:
    """A bare repository `name` under `root` with a commit on main and another on feature."""
    bare = root / name
    work = root / (name + "-work")
    git = ["git", "-c", "user.name=Teacher", "-c", "user.email=teacher@example.org", "-c", "init.defaultBranch=main"]
    subprocess.run(git + ["init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(git + ["init", "-q", str(work)], check=True)
    (work / "README.md").write_text("the course site\n")
    subprocess.run(git + ["-C", str(work), "add", "README.md"], check=True)
    subprocess.run(git + ["-C", str(work), "commit", "-qm", "first commit on main"], check=True)
    subprocess.run(git + ["-C", str(work), "checkout", "-qb", "feature"], check=True)
    (work / "lesson.md").write_text("lesson one\n")
    subprocess.run(git + ["-C", str(work), "add", "lesson.md"], check=True)
    subprocess.run(git + ["-C", str(work), "commit", "-qm", "a lesson on feature"], check=True)
    subprocess.run(git + ["-C", str(work), "push", "-q", str(bare), "main", "feature"], check=True)
    subprocess.run(["git", "-C", str(bare), "config", "http.receivepack", "true"], check=True)
    return bare
