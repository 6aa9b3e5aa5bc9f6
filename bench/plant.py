"""Plants made-up credentials into a copy of the benchmark corpus.

Writes files named keyhog_planted_*.{c,py,yaml,env} into directories of the
tree chosen with a fixed seed, each holding a secret in a realistic context,
and a manifest (JSON lines: path, line, service, secret) so the benchmark can
measure recall as well as speed.  Every token is random, with valid
checksums where the format has one; nothing here is a real credential.
"""
import base64
import json
import os
import random
import string
import sys
import zlib

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits


def crc_b62(body):
    crc = zlib.crc32(body.encode())
    out = ""
    while crc:
        crc, r = divmod(crc, 62)
        out = B62[r] + out
    return out.rjust(6, "0")


def rand(rnd, alphabet, n):
    return "".join(rnd.choice(alphabet) for _ in range(n))


def github(rnd):
    body = rand(rnd, B62, 30)
    return "github", "ghp_" + body + crc_b62(body)


def gitlab(rnd):
    return "gitlab", "glpat-" + rand(rnd, ALNUM + "-_", 20)


def aws(rnd):
    return "aws", "AKIA" + rand(rnd, string.ascii_uppercase + "234567", 16)


def slack(rnd):
    return "slack", "xoxb-%s-%s-%s" % (rand(rnd, string.digits, 12), rand(rnd, string.digits, 13),
                                       rand(rnd, ALNUM, 24))


def stripe(rnd):
    return "stripe", "sk_live_" + rand(rnd, ALNUM, 24)


def openai(rnd):
    return "openai", "sk-proj-" + rand(rnd, ALNUM + "-_", 48) + "T3BlbkFJ" + rand(rnd, ALNUM + "-_", 48)


def anthropic(rnd):
    return "anthropic", "sk-ant-api03-" + rand(rnd, ALNUM + "-_", 93) + "AA"


def sendgrid(rnd):
    return "sendgrid", "SG." + rand(rnd, ALNUM + "-_", 22) + "." + rand(rnd, ALNUM + "-_", 43)


def npm(rnd):
    body = rand(rnd, B62, 30)
    return "npm", "npm_" + body + crc_b62(body)


def gcp(rnd):
    return "gcp", "AIza" + rand(rnd, ALNUM + "-_", 35)


MAKERS = [github, gitlab, aws, slack, stripe, openai, anthropic, sendgrid, npm, gcp]

TEMPLATES = [
    ("c", 'static const char *api_token = "{s}";\n'),
    ("py", 'API_TOKEN = "{s}"\n'),
    ("yaml", "service:\n  credentials:\n    token: {s}\n"),
    ("env", "export SERVICE_TOKEN={s}\n"),
]


def main(root, count, manifest_path):
    rnd = random.Random(20261124)
    dirs = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        if "/." in dirpath:
            continue
        dirs.append(dirpath)
    dirs.sort()
    with open(manifest_path, "w") as man:
        for i in range(count):
            service, secret = MAKERS[i % len(MAKERS)](rnd)
            ext, tpl = TEMPLATES[i % len(TEMPLATES)]
            d = rnd.choice(dirs)
            path = os.path.join(d, "keyhog_planted_%04d.%s" % (i, ext))
            pre = "/* generated fixture */\n" * rnd.randint(0, 30)
            body = tpl.format(s=secret)
            if i % 7 == 3:  # some are only visible through decoding
                body = "blob: " + base64.b64encode(body.encode()).decode() + "\n"
            with open(path, "w") as f:
                f.write(pre + body)
            man.write(json.dumps({"path": path, "service": service, "secret": secret}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
