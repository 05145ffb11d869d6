"""Writes the review from the extracted rows in a file (the question on a line `Question: ...`,
then the extractor's table): what was found, a table, the fastest methods, and what each gives
up, all from the rows' own numbers. Prints Markdown."""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
question = next((line[len("Question: "):] for line in text.splitlines() if line.startswith("Question: ")), "(no question given)")
rows = []
for line in text.splitlines():
    cells = line.split("\t")
    if len(cells) == 7 and re.fullmatch(r"[LSRD]\d\d", cells[0]):
        rows.append(dict(zip(["id", "title", "year", "datasets", "speedup", "memory_saved", "results"], cells)))
datasets = sorted({d for r in rows for d in r["datasets"].split(", ") if d != "-"})
fast = sorted((r for r in rows if r["speedup"] != "-"), key=lambda r: -float(r["speedup"][:-1]))
# A blank first line: whatever a reply puts before the review stays off its heading.
out = ["", f"# Literature review: {question}", "",
       f"{len(rows)} papers from the corpus, published {min((r['year'] for r in rows), default='-')}"
       f" to {max((r['year'] for r in rows), default='-')}, reporting on {len(datasets)} datasets ({', '.join(datasets) or 'none'}).", "",
       "## Findings", ""]
if fast:
    out.append(f"- Fastest reported: {fast[0]['title']} ({fast[0]['id']}), {fast[0]['speedup']} against its baseline.")
for r in fast[1:4]:
    out.append(f"- {r['title']} ({r['id']}): {r['speedup']} faster; {r['results']}.")
for r in [r for r in rows if r["speedup"] == "-" and r["results"] != "-"][:4]:
    out.append(f"- {r['title']} ({r['id']}): {r['results']}.")
saved = [r for r in rows if r["memory_saved"] != "-"]
if saved:
    out.append("- Memory: " + "; ".join(f"{r['id']} saves {r['memory_saved']}" for r in saved) + ".")
out += ["", "## Evidence", "", "| paper | year | datasets | speed-up | results |", "|---|---|---|---|---|"]
out += [f"| {r['id']} {r['title']} | {r['year']} | {r['datasets']} | {r['speedup']} | {r['results']} |" for r in rows]
out += ["", "## Method", "",
        "A searcher ranked the corpus against the question, an extractor read each paper it found and took the numbers "
        "from the abstract's own text, and this review was written from the extractor's table alone."]
print("\n".join(out))
