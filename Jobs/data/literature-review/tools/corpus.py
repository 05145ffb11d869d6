"""The corpus of abstracts, read the same way by every tool: id, title, year, then the text."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ABSTRACTS = os.path.join(HERE, "..", "abstracts")
STOP = set("a an and are as at be by for from how in is it its of on or the to what which with without does do we our this that than".split())


def load():
    papers = {}
    for name in sorted(os.listdir(ABSTRACTS)):
        if not name.endswith(".txt"):
            continue
        head, _, text = open(os.path.join(ABSTRACTS, name), encoding="utf-8").read().partition("\n\n")
        fields = dict(line.split(": ", 1) for line in head.splitlines())
        papers[fields["id"]] = {"id": fields["id"], "title": fields["title"], "year": int(fields["year"]), "text": text.strip()}
    return papers


def words(text):
    return [w for w in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower()) if w not in STOP]
