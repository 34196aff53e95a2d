"""A stand-in Hugging Face hub on 127.0.0.1, for testing floodx's real hub code (`HF_ENDPOINT`).

Only the server is a stand-in: `transformers.from_pretrained`, `huggingface_hub` and
`datasets.load_dataset` run unchanged against it. It serves plain folders, one per repository
(`<root>/models/<org>/<name>/`, `<root>/datasets/<org>/<name>/`), through the few endpoints those
clients call: repository info, the file tree, paths-info, and `resolve` (HEAD and GET) with the
commit and ETag headers that `hf_hub_download` needs to fill its cache. Every request is logged,
so a test can say which files were fetched and that nothing was asked once offline.
"""

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_TYPES = {"models": "model", "datasets": "dataset"}


def _file_sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Repo:
    def __init__(self, kind, repo_id, folder):
        self.kind, self.repo_id, self.folder = kind, repo_id, Path(folder)
        files = sorted(p for p in self.folder.rglob("*") if p.is_file())
        self.files = {p.relative_to(self.folder).as_posix(): p for p in files}
        digest = hashlib.sha1(repo_id.encode())
        for name, path in self.files.items():
            digest.update(name.encode() + _file_sha(path).encode())
        self.sha = digest.hexdigest()  # a stand-in commit: changes when any file does

    def entry(self, path):
        if path in self.files:
            file = self.files[path]
            return {"type": "file", "path": path, "size": file.stat().st_size,
                    "oid": hashlib.sha1(file.read_bytes()).hexdigest(),
                    "lfs": {"oid": _file_sha(file), "size": file.stat().st_size, "pointerSize": 134}}
        if any(name.startswith(path.rstrip("/") + "/") for name in self.files) or path in ("", "."):
            return {"type": "directory", "path": path.strip("/"), "size": 0,
                    "oid": hashlib.sha1(path.encode()).hexdigest()}
        return None

    def tree(self, path, recursive):
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        names, entries = set(), []
        for name in self.files:
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):].split("/")
            for depth in range(1, len(rest) + 1):
                if depth > 1 and not recursive:
                    break
                sub = prefix + "/".join(rest[:depth])
                if sub not in names:
                    names.add(sub)
                    entries.append(self.entry(sub))
        return entries

    def info(self):
        card = {}
        readme = self.files.get("README.md")
        if readme is not None:
            card = _front_matter(readme.read_text())
        return {"id": self.repo_id, "_id": self.sha[:24], "sha": self.sha, "private": False,
                "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
                "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
                "cardData": card, "siblings": [{"rfilename": name} for name in self.files]}


def _front_matter(text):
    """The YAML block at the top of a README (datasets reads its `configs`; so do we, for info)."""
    import yaml

    if not text.startswith("---"):
        return {}
    block = text.split("---", 2)[1]
    return yaml.safe_load(block) or {}


class StandInHub:
    """`with StandInHub(root) as hub:` serves root's repositories at hub.endpoint until the block ends."""

    def __init__(self, root):
        self.root = Path(root)
        self.requests = []  # (method, path) of every request, in order
        self.server = None

    def repos(self):
        found = {}
        for kind_dir, kind in REPO_TYPES.items():
            base = self.root / kind_dir
            for folder in sorted(base.glob("*/*")) if base.is_dir() else []:
                repo_id = folder.relative_to(base).as_posix()
                found[(kind, repo_id)] = Repo(kind, repo_id, folder)
        return found

    def __enter__(self):
        hub = self
        repos = self.repos()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(head=True)

            def do_GET(self):
                self.answer()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                self.answer(body=body)

            def send_json(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def not_found(self, code, message):
                self.send_json(404, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

            def answer(self, head=False, body=""):
                url = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(url.path)
                hub.requests.append((self.command, path))
                parts = path.strip("/").split("/")
                if parts[0] == "api" and len(parts) >= 4 and parts[1] in REPO_TYPES:
                    return self.api(REPO_TYPES[parts[1]], parts[2:], url.query, body)
                kind = "dataset" if parts[0] == "datasets" else "model"
                rest = parts[1:] if kind == "dataset" else parts
                if len(rest) >= 5 and rest[2] == "resolve":
                    return self.resolve(kind, "/".join(rest[:2]), "/".join(rest[4:]), head)
                self.not_found("EntryNotFound", f"no such endpoint: {path}")

            def find_repo(self, kind, repo_id):
                repo = repos.get((kind, repo_id))
                if repo is None:
                    self.send_json(401, {"error": "Repository not found"},
                                   {"X-Error-Code": "RepositoryNotFound",
                                    "X-Error-Message": "Repository not found"})
                return repo

            def api(self, kind, rest, query, body):
                repo = self.find_repo(kind, "/".join(rest[:2]))
                if repo is None:
                    return
                tail = rest[2:]
                if not tail or tail[0] == "revision":
                    return self.send_json(200, repo.info())
                if tail[0] == "tree":
                    recursive = "recursive=true" in query.lower() or "recursive=1" in query
                    return self.send_json(200, repo.tree("/".join(tail[2:]), recursive))
                if tail[0] == "paths-info":
                    fields = urllib.parse.parse_qs(body) if body and not body.startswith("{") else \
                        (json.loads(body) if body else {})
                    paths = fields.get("paths", [])
                    paths = [paths] if isinstance(paths, str) else paths
                    return self.send_json(200, [e for e in (repo.entry(p) for p in paths) if e])
                self.not_found("EntryNotFound", f"no such endpoint: {'/'.join(tail)}")

            def resolve(self, kind, repo_id, filename, head):
                repo = self.find_repo(kind, repo_id)
                if repo is None:
                    return
                file = repo.files.get(filename)
                if file is None:
                    return self.send_json(404, {"error": "Entry not found"},
                                          {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                                           "X-Repo-Commit": repo.sha})
                data = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("X-Repo-Commit", repo.sha)
                self.send_header("ETag", f'"{_file_sha(file)}"')
                self.end_headers()
                if not head:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ the repositories a test serves
GLUE_CONFIGS = {
    # config -> (text fields, label names); the paper's GLUE configs, in GLUE's own field names
    "sst2": (("sentence",), ("negative", "positive")),
    "mrpc": (("sentence1", "sentence2"), ("not_equivalent", "equivalent")),
}


def write_glue_repo(root, rows_per_split=40):
    """A GLUE-shaped dataset repo (nyu-mll/glue): parquet per config and split, README configs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(root) / "datasets" / "nyu-mll" / "glue"
    words = [("a wonderful , witty film", "a dull and boring mess"),
             ("great acting and a fine story", "the worst plot i have seen")]
    card = {"configs": [], "dataset_info": []}
    for config, (fields, labels) in GLUE_CONFIGS.items():
        files = []
        for split in ("train", "validation", "test"):
            n = rows_per_split if split == "train" else rows_per_split // 2
            label = [i % 2 for i in range(n)] if split != "test" else [-1] * n
            columns = {}
            for f, field in enumerate(fields):
                columns[field] = [f"{words[f % 2][lab % 2]} {i}" if lab >= 0 else f"unlabelled {i}"
                                  for i, lab in enumerate(label)]
            columns["label"] = label
            columns["idx"] = list(range(n))
            rel = f"{config}/{split}-00000-of-00001.parquet"
            (folder / config).mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(columns), folder / rel)
            files.append({"split": split, "path": rel})
        card["configs"].append({"config_name": config, "data_files": files})
        features = [{"name": f, "dtype": "string"} for f in fields]
        features.append({"name": "label", "dtype": {"class_label": {
            "names": {str(i): name for i, name in enumerate(labels)}}}})
        features.append({"name": "idx", "dtype": "int32"})
        card["dataset_info"].append({"config_name": config, "features": features})
    import yaml

    (folder / "README.md").write_text("---\n" + yaml.safe_dump(card, sort_keys=False) + "---\n# GLUE stand-in\n")
    return folder


def write_model_repo(root, repo_id="floodx-standin/tiny-bert"):
    """A tiny BERT saved as a hub repo is saved (save_pretrained: config, safetensors, tokenizer)."""
    from floodx.models import tiny_bert

    folder = Path(root) / "models" / repo_id
    model, tokenizer = tiny_bert(2, Path(root) / "vocab-build")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
