"""Checks a wiki entry against the style guide and prints one JSON object describing it.
Usage: python3 check_entry.py entry.md"""
import json
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
title = re.search(r"^# (.+)$", text, re.M)
sections = re.findall(r"^## (.+)$", text, re.M)
problems = []
if not title:
    problems.append("no '# Title' line")
for required in ("Summary", "Keywords"):
    if required not in sections:
        problems.append(f"no '## {required}' section")
words = len(re.findall(r"\w+", text))
if words > 250:
    problems.append(f"{words} words; keep entries under 250")
print(json.dumps({
    "title": title.group(1) if title else "",
    "words": words,
    "sections": ", ".join(sections),
    "style": "ok" if not problems else "; ".join(problems),
}))
