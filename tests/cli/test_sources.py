"""Sources through the CLI: git history (every ref, attribution, --staged,
--range, --branch, --since), archives (nested, origins, --no-archives) and
container images (docker save, config env)."""
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile

from khtest import TreeTest, jsonl, run, write
from test_scan import github_token


def git(repo, *args, date=None, author=("Ada", "ada@example.org")):
    env = dict(os.environ, GIT_AUTHOR_NAME=author[0], GIT_AUTHOR_EMAIL=author[1],
               GIT_COMMITTER_NAME="Ci", GIT_COMMITTER_EMAIL="ci@example.org",
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


BOB = ("Bob Builder", "bob@example.net")
EVE = ("Eve", "eve@example.com")


class GitRepoTest(TreeTest):
    """A fresh repository in self.repo and helpers to check attribution."""

    def setUp(self):
        super().setUp()
        self.repo = os.path.join(self.tmp, "repo")
        os.makedirs(self.repo)
        git(self.repo, "init", "-q", "-b", "main")

    def commit(self, msg, date, files, author=("Ada", "ada@example.org")):
        """Writes files (name -> text; None deletes), commits them all."""
        for name, text in files.items():
            if text is None:
                os.remove(os.path.join(self.repo, name))
            else:
                write(self.repo, name, text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", msg, date=date, author=author)
        return git(self.repo, "rev-parse", "HEAD")

    def scan(self, *args, fmt="jsonl"):
        p = run("scan", "--git", "--format", fmt, "--show-secrets", *args, self.repo)
        self.assertIn(p.returncode, (0, 1), p.stderr)
        return p

    def secrets(self, *args):
        rows = jsonl(self.scan(*args))
        by = {}
        for r in rows:
            self.assertNotIn(r["secret"], by, "each secret reported once")
            by[r["secret"]] = r
        return by

    def assertOrigin(self, row, commit, author, date, path, line):
        """Every origin field of a JSON/JSONL finding."""
        self.assertEqual(row["commit"], commit)
        self.assertEqual((row["author"], row["email"]), author)
        self.assertEqual(row["date"], date)
        self.assertEqual((row["path"], row["line"]), (path, line))

    def distinct_blobs(self):
        out = git(self.repo, "rev-list", "--all", "--objects")
        ids = [l.split()[0] for l in out.splitlines()]
        p = subprocess.run(["git", "cat-file", "--batch-check=%(objecttype)"], cwd=self.repo,
                           input="\n".join(ids) + "\n", capture_output=True, text=True,
                           check=True)
        return p.stdout.split().count("blob")


class GitTest(GitRepoTest):
    def setUp(self):
        super().setUp()
        self.old = github_token("ghp", 501)
        self.first = self.commit("add deploy", "2024-01-02T10:00:00Z",
                                 {"deploy.sh": f"export GITHUB_TOKEN={self.old}\n"})
        self.commit("remove token", "2024-03-02T10:00:00Z",
                    {"deploy.sh": "export GITHUB_TOKEN=$TOKEN\n"}, author=BOB)
        git(self.repo, "checkout", "-q", "-b", "feature")
        self.feat = github_token("ghp", 502)
        self.feature = self.commit("feature", "2024-05-02T10:00:00Z",
                                   {"cfg/app.env": f"\nTOKEN={self.feat}\n"}, author=EVE)
        git(self.repo, "checkout", "-q", "main")

    def test_deleted_secret_found_with_attribution(self):
        found = self.secrets()
        self.assertEqual(set(found), {self.old, self.feat})
        self.assertOrigin(found[self.old], self.first, ("Ada", "ada@example.org"),
                          "2024-01-02T10:00:00Z", "deploy.sh", 1)
        self.assertOrigin(found[self.feat], self.feature, EVE, "2024-05-02T10:00:00Z",
                          "cfg/app.env", 2)
        # The plain tree holds neither.
        self.assertEqual(run("scan", self.repo).returncode, 0)

    def test_json_and_sarif_carry_the_same_origin(self):
        rows = {r["secret"]: r for r in jsonl(self.scan())}
        doc = json.loads(self.scan(fmt="json").stdout)
        self.assertEqual(len(doc["findings"]), 2)
        for f in doc["findings"]:
            r = rows[f["secret"]]
            for k in ("commit", "author", "email", "date", "path", "line", "column"):
                self.assertEqual(f[k], r[k], k)
        sarif = json.loads(self.scan(fmt="sarif").stdout)
        results = sarif["runs"][0]["results"]
        self.assertEqual(len(results), 2)
        by_commit = {r["commit"]: r for r in rows.values()}
        for res in results:
            props = res["properties"]
            r = by_commit[props["commit"]]
            self.assertEqual((props["author"], props["email"], props["date"]),
                             (r["author"], r["email"], r["date"]))
            loc = res["locations"][0]["physicalLocation"]
            self.assertEqual(loc["artifactLocation"]["uri"], r["path"])
            self.assertEqual(loc["region"]["startLine"], r["line"])
            self.assertEqual(loc["region"]["startColumn"], r["column"])

    def test_side_branch_only(self):
        # Never merged: found from all refs, not from main alone.
        self.assertEqual(set(self.secrets("--branch", "main")), {self.old})
        self.assertEqual(set(self.secrets("--branch", "feature")), {self.old, self.feat})
        self.assertEqual(self.secrets()[self.feat]["commit"], self.feature)

    def test_branch_since_range(self):
        self.assertEqual(set(self.secrets("--since", "2024-04-01")), {self.feat})
        self.assertEqual(set(self.secrets("--range", "main..feature")), {self.feat})
        self.assertEqual(set(self.secrets("--range", "feature..main")), set())

    def test_tags_and_remote_tracking_refs(self):
        # Commits reachable only from a tag (lightweight and annotated) and
        # from a remote-tracking ref, their branches deleted.
        made = {}
        for name, seed, kind in (("t1", 511, "tag"), ("t2", 512, "annotated"),
                                 ("r1", 513, "remote")):
            git(self.repo, "checkout", "-q", "-b", "tmp-" + name, "main")
            tok = github_token("ghp", seed)
            made[tok] = self.commit(name, "2024-06-0%dT08:00:00Z" % (seed - 510),
                                    {f"{name}/key.txt": f"key: {tok}\n"}, author=BOB)
            git(self.repo, "checkout", "-q", "main")
            if kind == "tag":
                git(self.repo, "tag", "v-" + name, "tmp-" + name)
            elif kind == "annotated":
                git(self.repo, "tag", "-a", "-m", "release", "v-" + name, "tmp-" + name)
            else:
                git(self.repo, "update-ref", "refs/remotes/origin/wip", "tmp-" + name)
            git(self.repo, "branch", "-q", "-D", "tmp-" + name)
        found = self.secrets()
        self.assertEqual(set(found), {self.old, self.feat, *made})
        for tok, commit in made.items():
            r = found[tok]
            name = r["path"].split("/")[0]
            day = {"t1": 1, "t2": 2, "r1": 3}[name]
            self.assertOrigin(r, commit, BOB, f"2024-06-0{day}T08:00:00Z", f"{name}/key.txt", 1)
        self.assertEqual(set(self.secrets("--branch", "v-t2")), {self.old, list(made)[1]})
        self.assertEqual(set(self.secrets("--branch", "origin/wip")), {self.old, list(made)[2]})

    def test_replace_refs_cannot_hide_a_blob(self):
        # refs/replace makes git show other bytes for an object; the scan
        # reads the blob itself, whichever reader it uses.
        blob = git(self.repo, "rev-parse", f"{self.first}:deploy.sh")
        clean = git(self.repo, "rev-parse", "HEAD:deploy.sh")
        git(self.repo, "replace", blob, clean)
        self.assertNotIn("ghp_", git(self.repo, "cat-file", "-p", blob))
        self.assertEqual(self.secrets()[self.old]["commit"], self.first)
        p = run("scan", "--git", "--format", "jsonl", "--show-secrets", self.repo,
                env={"PATH": "/nonexistent"})
        self.assertIn(self.old, {r["secret"] for r in jsonl(p)})

    def test_staged(self):
        staged = github_token("ghp", 503)
        write(self.repo, "new.txt", f"T={staged}\n")
        git(self.repo, "add", "new.txt")
        write(self.repo, "unstaged.txt", f"T={github_token('ghp', 504)}\n")
        p = run("scan", "--staged", "--format", "jsonl", "--show-secrets", self.repo)
        self.assertEqual([r["secret"] for r in jsonl(p)], [staged])
        self.assertEqual(jsonl(p)[0]["commit"], "staged")
        self.assertEqual(p.returncode, 1)

    def test_not_a_repository(self):
        p = run("scan", "--git", self.tmp + "/nope")
        self.assertIn("nope", p.stderr.decode())

    def test_bad_since(self):
        self.assertEqual(run("scan", "--since", "yesterday", self.repo).returncode, 2)

    def test_hostile_partial_clone_config_runs_nothing(self):
        """A repository whose config says "partial clone, fetch missing
        blobs over ssh with this command": scanning it must not run the
        command, fetch, prompt or hang; the missing blob is a skip."""
        token = github_token("ghp", 505)
        self.commit("add", "2024-01-01T00:00:00Z", {"ok.env": f"T={token}\n"})
        blob = subprocess.run(["git", "hash-object", "--stdin"], cwd=self.repo, input="s\n",
                              capture_output=True, text=True, check=True).stdout.strip()
        tree = subprocess.run(["git", "mktree", "--missing"], cwd=self.repo,
                              input=f"100644 blob {blob}\tgone.txt\n", capture_output=True,
                              text=True, check=True).stdout.strip()
        head = git(self.repo, "commit-tree", tree, "-p", "HEAD", "-m", "missing blob")
        git(self.repo, "update-ref", "refs/heads/main", head)
        marker = os.path.join(self.tmp, "ran")
        for k, v in (("extensions.partialClone", "origin"),
                     ("remote.origin.url", "ssh://example.invalid/x"),
                     ("remote.origin.promisor", "true"),
                     ("core.sshCommand", f"touch {marker}; sleep 60")):
            git(self.repo, "config", k, v)
        p = run("scan", "--git", "--format", "jsonl", "--show-secrets", self.repo, timeout=60)
        self.assertFalse(os.path.exists(marker), "the repository's command ran")
        self.assertIn(token, [r["secret"] for r in jsonl(p)], p.stderr)
        self.assertIn("gone.txt: skipped", p.stderr.decode())
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".git", "objects",
                                                     blob[:2], blob[2:])))


class GitMergeTest(GitRepoTest):
    """Merges: a line only the merge commit adds is the merge's; a secret
    merged in from a side branch stays the side commit's, reported once."""

    def setUp(self):
        super().setUp()
        self.base = self.commit("init", "2024-01-01T00:00:00Z",
                                {"app.conf": "name = app\nport = 80\n"})
        git(self.repo, "checkout", "-q", "-b", "side")
        self.side_tok = github_token("ghp", 521)
        self.side1 = self.commit("side: add key", "2024-01-02T00:00:00Z",
                                 {"side/creds.env": f"# creds\nGH={self.side_tok}\n"}, author=EVE)
        # The same secret in a second blob, one line higher: still one
        # finding, and still the commit that introduced it.
        self.side2 = self.commit("side: more", "2024-01-03T00:00:00Z",
                                 {"side/creds.env": f"GH={self.side_tok}\nmore = 1\n"},
                                 author=BOB)
        git(self.repo, "checkout", "-q", "main")
        self.main2 = self.commit("main: port", "2024-01-04T00:00:00Z",
                                 {"app.conf": "name = app\nport = 8080\n"})
        # An evil merge: the result holds a line neither parent has.
        self.evil_tok = github_token("ghp", 522)
        git(self.repo, "merge", "-q", "--no-ff", "--no-commit", "side",
            date="2024-01-05T00:00:00Z")
        write(self.repo, "app.conf", f"name = app\nport = 8080\ntoken = {self.evil_tok}\n")
        git(self.repo, "add", "app.conf")
        git(self.repo, "commit", "-qm", "merge side", date="2024-01-05T00:00:00Z", author=BOB)
        self.merge = git(self.repo, "rev-parse", "HEAD")
        self.assertEqual(git(self.repo, "rev-parse", "HEAD^2"), self.side2)

    def test_merge_attribution(self):
        found = self.secrets()
        self.assertEqual(set(found), {self.side_tok, self.evil_tok})
        self.assertOrigin(found[self.evil_tok], self.merge, BOB, "2024-01-05T00:00:00Z",
                          "app.conf", 3)
        r = found[self.side_tok]
        self.assertOrigin(r, self.side1, EVE, "2024-01-02T00:00:00Z", "side/creds.env", 2)
        # Both blobs holding it are listed, the introducing commit first.
        self.assertEqual([l["commit"] for l in r["locations"]], [self.side1, self.side2])
        # --branch main reaches the side commits through the merge.
        self.assertEqual(self.secrets("--branch", "main")[self.side_tok]["commit"], self.side1)

    def test_each_distinct_blob_once(self):
        doc = json.loads(self.scan(fmt="json").stdout)
        self.assertEqual(doc["stats"]["files_scanned"], self.distinct_blobs())
        p = self.scan("--no-dedupe")
        side = [r for r in jsonl(p) if r["secret"] == self.side_tok]
        self.assertEqual(sorted(r["commit"] for r in side), sorted([self.side1, self.side2]))

    def test_conflict_resolution(self):
        # Both branches change the same line; the resolution is new text.
        git(self.repo, "checkout", "-q", "-b", "other", self.base)
        self.commit("other: port", "2024-02-01T00:00:00Z", {"app.conf": "name = app\nport = 9090\n"})
        git(self.repo, "checkout", "-q", "main")
        with self.assertRaises(subprocess.CalledProcessError):
            git(self.repo, "merge", "-q", "other")
        tok = github_token("ghp", 523)
        write(self.repo, "app.conf", f"name = app\nport = 8080\npassword_token = {tok}\n")
        git(self.repo, "add", "app.conf")
        git(self.repo, "commit", "-qm", "resolve", date="2024-02-02T00:00:00Z", author=EVE)
        resolved = git(self.repo, "rev-parse", "HEAD")
        self.assertOrigin(self.secrets()[tok], resolved, EVE, "2024-02-02T00:00:00Z",
                          "app.conf", 3)


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


def have(tool):
    return shutil.which(tool) is not None


class ArchiveToolTest(TreeTest):
    """Archives made by the real tools (zip, tar with each compressor, 7z,
    gzip), scanned as files in a tree: every finding's origin chain and
    line.  A test is skipped only when its tool is not installed."""

    def setUp(self):
        super().setUp()
        self.src = os.path.join(self.tmp, "src")   # what goes in, not scanned
        self.out = os.path.join(self.tmp, "dist")  # the archives, scanned
        os.makedirs(self.src)
        os.makedirs(self.out)
        self.seed = 800

    def need(self, *tools):
        for t in tools:
            if not have(t):
                self.skipTest(t + " is not installed")

    def put(self, rel, lines_before=0, key="token"):
        """A file under src/ with a fresh secret on line lines_before + 1."""
        self.seed += 1
        tok = github_token("ghp", self.seed)
        write(self.src, rel, "# settings\n" * lines_before + f"{key} = {tok}\nother = 1\n")
        return tok

    def sh(self, *cmd, cwd=None):
        subprocess.run(cmd, cwd=cwd or self.src, check=True, capture_output=True)

    def found(self):
        p = run("scan", "--format", "jsonl", "--show-secrets", self.out)
        self.assertIn(p.returncode, (0, 1), p.stderr)
        rows = jsonl(p)
        got = {r["secret"]: (r["path"], r["line"]) for r in rows}
        self.assertEqual(len(got), len(rows), "each secret once")
        return got

    def test_zip_and_jar_inside(self):
        self.need("zip")
        top = self.put("lib/README.txt", 0)
        tok = self.put("jar/config.properties", 2)
        self.sh("zip", "-q", "-r", "../lib/app.jar", ".", cwd=os.path.join(self.src, "jar"))
        dist = os.path.join(self.out, "dist.zip")
        self.sh("zip", "-q", "-r", dist, "lib")
        self.assertEqual(self.found(), {
            tok: (dist + "!lib/app.jar!config.properties", 3),
            top: (dist + "!lib/README.txt", 1)})
        # --no-archives: the archives are not opened at all.
        p = run("scan", "--no-archives", "--format", "jsonl", self.out)
        self.assertEqual(jsonl(p), [])

    def test_tar_with_every_compressor(self):
        self.need("tar")
        want = {}
        for name, flags, tool in (("plain.tar", ["-cf"], None),
                                  ("app.tar.gz", ["-czf"], "gzip"),
                                  ("app.tar.bz2", ["-cjf"], "bzip2"),
                                  ("app.tar.xz", ["-cJf"], "xz"),
                                  ("app.tar.zst", ["--zstd", "-cf"], "zstd")):
            if tool and not have(tool):
                continue
            shutil.rmtree(os.path.join(self.src, "conf"), ignore_errors=True)
            tok = self.put("conf/app.env", 4)
            dest = os.path.join(self.out, name)
            self.sh("tar", *flags, dest, "conf")
            want[tok] = (dest + "!conf/app.env", 5)
        self.assertGreaterEqual(len(want), 2)
        self.assertEqual(self.found(), want)

    def test_7z(self):
        self.need("7z")
        tok = self.put("deploy/keys.yaml", 1)
        dest = os.path.join(self.out, "bundle.7z")
        self.sh("7z", "a", "-bd", "-y", dest, "deploy")
        self.assertEqual(self.found(), {tok: (dest + "!deploy/keys.yaml", 2)})

    def test_gzip_single_file(self):
        self.need("gzip")
        tok = self.put("notes.txt", 6)
        self.sh("gzip", "-k", "notes.txt")
        shutil.move(os.path.join(self.src, "notes.txt.gz"), self.out)
        self.assertEqual(self.found(),
                         {tok: (os.path.join(self.out, "notes.txt.gz") + "!notes.txt", 7)})

    def test_zip_in_tar_in_7z(self):
        self.need("zip", "tar", "7z")
        tok = self.put("inner/secret.yaml", 3)
        self.sh("zip", "-q", "-r", "../inner.zip", ".", cwd=os.path.join(self.src, "inner"))
        self.sh("tar", "-cf", "mid.tar", "inner.zip")
        dest = os.path.join(self.out, "outer.7z")
        self.sh("7z", "a", "-bd", "-y", dest, "mid.tar")
        self.assertEqual(self.found(), {tok: (dest + "!mid.tar!inner.zip!secret.yaml", 4)})
        # Three archives below the top one is the limit: wrapped twice more,
        # the innermost zip is reported, not scanned.
        self.sh("tar", "-cf", "deeper.tar", "-C", self.out, "outer.7z")
        self.sh("zip", "-q", "top.zip", "deeper.tar")
        os.remove(dest)
        top = os.path.join(self.out, "top.zip")
        shutil.move(os.path.join(self.src, "top.zip"), top)
        p = run("scan", "--format", "jsonl", self.out)
        self.assertEqual(jsonl(p), [])
        err = p.stderr.decode()
        self.assertIn(top + "!deeper.tar!outer.7z!mid.tar!inner.zip: skipped: archive limit: "
                      "nested deeper than 3", err)


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
