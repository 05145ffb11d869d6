"""An extractive drafter: the offline stand-in for the model's own writing.

Offline (no model key), the job's playbook runs this to turn an abstract into a wiki entry: it
takes the title, the first and the most number-laden sentences, and the most frequent content
words. A real model writes the entry itself and uses check_entry.py the same way."""
import collections
import re
import sys

STOP = set("""a an and are as at be by for from has have in is it its of on or that the this to was were
we which with without our their than more most each after before only over into one two""".split())

text = open(sys.argv[1], encoding="utf-8").read()
header, _, body = text.partition("\n\n")
fields = dict(line.split(": ", 1) for line in header.splitlines() if ": " in line)
sentences = re.split(r"(?<=[.!?])\s+", body.strip())
numeric = sorted(sentences[1:], key=lambda s: -len(re.findall(r"\d", s)))
summary = [sentences[0]] + ([numeric[0]] if numeric and re.search(r"\d", numeric[0]) else [])
words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]+", body)]
keywords = [w for w, _ in collections.Counter(w for w in words if w not in STOP and len(w) > 3).most_common(5)]
print(f"# {fields.get('Title', 'Untitled')}\n")
print(f"*Source:* {fields.get('Authors', 'unknown authors')}  ")
print("*Status:* draft for review (drafted offline by the scripted model's playbook)\n")
print("## Summary\n")
print(" ".join(summary) + "\n")
print("## Keywords\n")
print(", ".join(keywords))
