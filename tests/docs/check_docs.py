#!/usr/bin/env python3
"""The docs that rot first, checked against the code: every configuration key of common/config.cpp's key
tables in docs/configuration.md and in the vmm-cgroup-hooks.json(5) source, with its bound where the table
states one; every file of common/ (its directory and common/meson.build's source list) in docs/design.md;
and every relative link of README.md and docs/*.md to a file that exists and, with #anchor, to a heading it
has. Standard library only; exits 1 naming each miss.

    python3 tests/docs/check_docs.py [SOURCE_ROOT]
"""
import os
import re
import sys

# A key table entry: {"key", Presence::..., <reader>}, up to the next entry.
ENTRY = re.compile(r'\{"(\w+)",\s*Presence::')


def read(root, path):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        return f.read()


def table(text, name):
    """The entries of `const Schema<T, N> name = {{ ... }};` as {key: reader text}, checked against N."""
    match = re.search(r"Schema<\w+,\s*(\d+)>\s+" + name + r"\s*=\s*\{\{(.*?)\n\}\};", text, re.S)
    if not match:
        sys.exit(f"check_docs: no key table '{name}' in common/config.cpp: update this check")
    size, body = int(match.group(1)), match.group(2)
    starts = list(ENTRY.finditer(body))
    if len(starts) != size:
        sys.exit(f"check_docs: '{name}' declares {size} keys, {len(starts)} found: update this check")
    entries = {}
    for i, start in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(body)
        entries[start.group(1)] = body[start.end():end]
    return entries


def bound(reader):
    """The range a reader enforces, as the docs write it ("0..16", "2..262144"), when it is a plain one."""
    if m := re.search(r"bounded\(f,\s*(\d+),\s*(\d+)\)", reader):
        return f"{m.group(1)}..{m.group(2)}"
    if m := re.search(r"bounded\(f,\s*(\d+)\)", reader):
        return f"0..{m.group(1)}"
    if m := re.search(r"non_negative\((\d+)\)", reader):
        low = re.search(r"must be at least (\d+)", reader)
        return f"{low.group(1) if low else 0}..{m.group(1)}"
    return None


def markdown_row(doc, key):
    """The table row of `key` in docs/configuration.md."""
    for line in doc.splitlines():
        if line.startswith(f"| `{key}` |"):
            return line
    return None


def man_entry(doc, key):
    """The paragraph of *key* in the .5 source ("*a*, *key*" included): from its line up to the next key at the
    same indentation."""
    match = re.search(r"^(\t*)(?:\*\w+\*, )*\*" + re.escape(key) + r"\*.*?$(.*?)(?=^\1\*\w|^# |\Z)", doc,
                      re.S | re.M)
    return match.group(0) if match else None


def check_keys(root, problems):
    code = read(root, "common/config.cpp")
    keys = {**table(code, "config_keys"), **table(code, "limit_keys")}
    docs = {
        "docs/configuration.md": (read(root, "docs/configuration.md"), markdown_row),
        "docs/man/vmm-cgroup-hooks.json.5.scd": (read(root, "docs/man/vmm-cgroup-hooks.json.5.scd"), man_entry),
    }
    for key, reader in keys.items():
        expected = bound(reader)
        for path, (doc, find) in docs.items():
            entry = find(doc, key)
            if entry is None:
                problems.append(f"{path}: configuration key '{key}' (common/config.cpp) is missing")
            elif expected and expected not in entry:
                problems.append(f"{path}: configuration key '{key}': the bound {expected} "
                                f"(common/config.cpp) is not stated")
    return len(keys)


def check_sources(root, problems):
    listed = re.findall(r"'([\w.]+\.cpp)'", read(root, "common/meson.build"))
    if not listed:
        sys.exit("check_docs: no sources found in common/meson.build: update this check")
    present = [name for name in os.listdir(os.path.join(root, "common")) if name.endswith((".h", ".cpp"))]
    design = read(root, "docs/design.md")
    for name in sorted(set(listed) | set(present)):
        if f"`{name}`" not in design:
            problems.append(f"docs/design.md: common/{name} is not in the source layout")
    return len(set(listed) | set(present))


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(text):
    """The anchors GitHub makes of a Markdown file's headings: lower case, punctuation dropped, spaces as '-'."""
    fenced = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", fenced, re.M)}


def check_links(root, problems):
    pages = ["README.md"] + sorted(os.path.join("docs", n) for n in os.listdir(os.path.join(root, "docs"))
                                   if n.endswith(".md"))
    count = 0
    for page in pages:
        for target in LINK.findall(read(root, page)):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            count += 1
            path, _, anchor = target.partition("#")
            file = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(os.path.join(root, file)):
                problems.append(f"{page}: link to {target}: {file} does not exist")
            elif anchor and file.endswith(".md") and anchor not in anchors(read(root, file)):
                problems.append(f"{page}: link to {target}: {file} has no heading for #{anchor}")
    return count


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    problems = []
    keys = check_keys(root, problems)
    files = check_sources(root, problems)
    links = check_links(root, problems)
    for problem in problems:
        print(f"check_docs: {problem}", file=sys.stderr)
    print(f"check_docs: {keys} configuration keys, {files} files of common/, {links} links: "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
