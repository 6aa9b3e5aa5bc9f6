"""Sources through the CLI: git history (every ref, attribution, --staged,
--range, --branch, --since), archives (nested, origins, --no-archives) and
container images (docker save, config env)."""
import io
import json
import os
import subprocess
import tarfile
import zipfile

from khtest import TreeTest, jsonl, run, write
from test_scan import github_token


def git(repo, *args, date=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="Ada", GIT_AUTHOR_EMAIL="ada@example.org",
               GIT_COMMITTER_NAME="Ada", GIT_COMMITTER_EMAIL="ada@example.org")
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


class GitTest(TreeTest):
    def setUp(self):
        super().setUp()
        self.repo = os.path.join(self.tmp, "repo")
        os.makedirs(self.repo)
        git(self.repo, "init", "-q", "-b", "main")
        self.old = github_token("ghp", 501)
        write(self.repo, "deploy.sh", f"export GITHUB_TOKEN={self.old}\n")
        git(self.repo, "add", ".")
        git(self.repo, "commit", "-qm", "add deploy", date="2024-01-02T10:00:00Z")
        self.first = git(self.repo, "rev-parse", "HEAD")
        write(self.repo, "deploy.sh", "export GITHUB_TOKEN=$TOKEN\n")
        git(self.repo, "commit", "-qam", "remove token", date="2024-03-02T10:00:00Z")
        git(self.repo, "checkout", "-q", "-b", "feature")
        self.feat = github_token("ghp", 502)
        write(self.repo, "cfg/app.env", f"\nTOKEN={self.feat}\n")
        git(self.repo, "add", ".")
        git(self.repo, "commit", "-qm", "feature", date="2024-05-02T10:00:00Z")
        git(self.repo, "checkout", "-q", "main")

    def secrets(self, *args):
        p = run("scan", "--git", "--format", "jsonl", "--show-secrets", *args, self.repo)
        self.assertIn(p.returncode, (0, 1), p.stderr)
        return {r["secret"]: r for r in jsonl(p)}

    def test_deleted_secret_found_with_attribution(self):
        found = self.secrets()
        self.assertEqual(set(found), {self.old, self.feat})
        r = found[self.old]
        self.assertEqual(r["commit"], self.first)
        self.assertEqual((r["author"], r["email"]), ("Ada", "ada@example.org"))
        self.assertTrue(r["date"].startswith("2024-01-02"))
        self.assertEqual((r["path"], r["line"]), ("deploy.sh", 1))
        self.assertEqual(found[self.feat]["line"], 2)
        # The plain tree holds neither.
        self.assertEqual(run("scan", self.repo).returncode, 0)

    def test_branch_since_range(self):
        self.assertEqual(set(self.secrets("--branch", "main")), {self.old})
        self.assertEqual(set(self.secrets("--since", "2024-04-01")), {self.feat})
        self.assertEqual(set(self.secrets("--range", "main..feature")), {self.feat})

    def test_staged(self):
        staged = github_token("ghp", 503)
        write(self.repo, "new.txt", f"T={staged}\n")
        git(self.repo, "add", "new.txt")
        write(self.repo, "unstaged.txt", f"T={github_token('ghp', 504)}\n")
        p = run("scan", "--staged", "--format", "jsonl", "--show-secrets", self.repo)
        self.assertEqual([r["secret"] for r in jsonl(p)], [staged])
        self.assertEqual(p.returncode, 1)

    def test_not_a_repository(self):
        p = run("scan", "--git", self.tmp + "/nope")
        self.assertIn("nope", p.stderr.decode())

    def test_bad_since(self):
        self.assertEqual(run("scan", "--since", "yesterday", self.repo).returncode, 2)


class ArchiveTest(TreeTest):
    def test_nested_archive_origins(self):
        token = github_token("ghp", 601)
        inner = io.BytesIO()
        with tarfile.open(fileobj=inner, mode="w:gz") as t:
            data = f"token = {token}\n".encode()
            info = tarfile.TarInfo("conf/app.properties")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        path = os.path.join(self.tmp, "dist.zip")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("lib/bundle.tar.gz", inner.getvalue())
            z.writestr("README", "nothing here\n")
        p = run("scan", "--format", "jsonl", self.tmp)
        rows = jsonl(p)
        self.assertEqual(len(rows), 1, p.stderr)
        self.assertEqual(rows[0]["path"], path + "!lib/bundle.tar.gz!conf/app.properties")
        self.assertEqual(rows[0]["line"], 1)
        self.assertEqual(run("scan", "--no-archives", self.tmp).returncode, 0)

    def test_bomb_is_reported_and_scan_goes_on(self):
        path = os.path.join(self.tmp, "bomb.zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("zeros.txt", b"0" * (300 << 20))
        write(self.tmp, "ok.env", f"T={github_token('ghp', 602)}\n")
        p = run("scan", "--format", "json", self.tmp, timeout=120)
        doc = json.loads(p.stdout)
        self.assertEqual(len(doc["findings"]), 1)
        self.assertGreaterEqual(doc["stats"]["files_skipped"], 1)
        self.assertIn("bomb.zip", p.stderr.decode())

    def test_corrupt_archive(self):
        write(self.tmp, "broken.zip", b"PK\x03\x04" + os.urandom(200))
        write(self.tmp, "ok.env", f"T={github_token('ghp', 603)}\n")
        p = run("scan", "--format", "jsonl", self.tmp)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(jsonl(p)), 1)


class ImageTest(TreeTest):
    def test_docker_save_layers_and_config(self):
        layer_token = github_token("ghp", 701)
        env_token = github_token("ghp", 702)
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as t:
            data = f"API={layer_token}\n".encode()
            info = tarfile.TarInfo("etc/app.env")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        config = json.dumps({"config": {"Env": [f"GH_TOKEN={env_token}", "PATH=/bin"]},
                             "history": [{"created_by": "RUN make"}]}).encode()
        path = os.path.join(self.tmp, "image.tar")
        digest = "a" * 64
        with tarfile.open(path, "w") as t:
            for name, data in ((f"{digest}/layer.tar", layer.getvalue()),
                               ("config.json", config),
                               ("manifest.json", json.dumps([{"Config": "config.json",
                                                              "Layers": [f"{digest}/layer.tar"]}]).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        p = run("scan", "--format", "jsonl", "--show-secrets", path)
        found = {r["secret"]: r["path"] for r in jsonl(p)}
        self.assertEqual(set(found), {layer_token, env_token}, p.stderr)
        self.assertTrue(found[layer_token].startswith(path + "!layer "))
        self.assertTrue(found[layer_token].endswith("!etc/app.env"))
        self.assertEqual(found[env_token], path + "!config")
