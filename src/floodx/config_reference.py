"""config/README.md, the reference of every config key, generated from workflow/schemas/config.schema.yaml
(key, type, default, meaning), so that the documentation cannot drift from what is validated.

    python -m floodx.config_reference --out config/README.md       (tests/test_config.py checks it is in sync)
"""

import argparse
import json
from pathlib import Path

import yaml

from .config import BASE_CONFIG, SCHEMA

HEADER = """# Config reference (generated)

Every key floodx accepts, as `workflow/schemas/config.schema.yaml` validates it; written by
`python -m floodx.config_reference --out config/README.md` (a test checks that it is in sync).
A run reads `config/config.yaml` (the embedded default) and then each `--configfile` overlay, key by key,
except `datasets`, which an overlay replaces as a whole. An unknown key, a wrong type or a value out of
range stops the run before any job, naming the key. The default column is config.yaml's value where it\nsets the key, else the schema's, marked (schema): each key has its default in one of the two, never both.

Overlays in this folder: `tiny.yaml` (smoke test), `seeds.yaml` (three seeds), `evidence.yaml` (the
evidence run, `make evidence`), `successors.yaml` (Flooding's successors added to the evidence run,
`make evidence CONFIG=config/successors.yaml`), `paper.yaml` (the paper's setting, for a GPU cluster).

| key | type | default | meaning |
|---|---|---|---|
"""


def _type(node):
    if "enum" in node:
        return " \\| ".join(json.dumps(v) for v in node["enum"])
    kind = node.get("type", "object" if "properties" in node else "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(k for k in kinds if k)
    if "items" in node and "enum" in node["items"]:
        text += " of " + " \\| ".join(node["items"]["enum"])
    elif "items" in node and node["items"].get("type"):
        text += f" of {node['items']['type']}"
    for bound, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if bound in node:
            text += f", {sign} {node[bound]}"
    return text


def _default(child, name, base):
    """One layer of defaults: config.yaml's value where it sets the key, else the schema's (a test checks
    that no key has both); an object's own `{}` default is structure, not a value."""
    if isinstance(base, dict) and name in base and not isinstance(base[name], dict):
        return f"`{json.dumps(base[name])}`"
    if "default" in child and child["default"] != {}:
        return f"`{json.dumps(child['default'])}` (schema)"
    return ""


def _rows(node, base, prefix=""):
    for name, child in (node.get("properties") or {}).items():
        key = f"{prefix}{name}"
        meaning = " ".join(str(child.get("description", "")).split())
        yield f"| `{key}` | {_type(child)} | {_default(child, name, base)} | {meaning} |"
        below = base.get(name) if isinstance(base, dict) else None
        if "properties" in child:
            yield from _rows(child, below if isinstance(below, dict) else {}, key + ".")
        entry = child.get("additionalProperties")
        if isinstance(entry, dict) and "properties" in entry:
            yield from _rows(entry, {}, key + ".<name>.")


def reference(schema_path=SCHEMA, base_config=BASE_CONFIG):
    schema = yaml.safe_load(Path(schema_path).read_text())
    base = yaml.safe_load(Path(base_config).read_text())
    return HEADER + "\n".join(_rows(schema, base)) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.config_reference", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write here (default: print)")
    args = parser.parse_args(argv)
    text = reference()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
