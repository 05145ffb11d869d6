"""Reads the paper ids in a file (as the searcher listed them) and extracts, from each abstract's
own text, the datasets it reports on and its numbers: accuracy, exact match, perplexity, speed
and memory. Prints one tab-separated row per paper under a header."""
import re
import sys

from corpus import load

DATASETS = ["Long Range Arena", "Path-X", "WikiText-103", "WMT14", "Natural Questions", "MS MARCO", "GLUE", "MMLU"]
papers = load()
ids = []
for pid in re.findall(r"\b[LSRD]\d\d\b", open(sys.argv[1], encoding="utf-8").read()):
    if pid in papers and pid not in ids:
        ids.append(pid)
print("id\ttitle\tyear\tdatasets\tspeedup\tmemory_saved\tresults")
for pid in ids:
    text = papers[pid]["text"]
    datasets = [d for d in DATASETS if d in text]
    speed = max((float(x) for x in re.findall(r"(\d+(?:\.\d+)?)x (?:faster|the speed)", text)), default=None)
    memory = max((int(x) for x in re.findall(r"(\d+)% less memory", text)), default=None)
    results = []
    results += [f"{v}% {m}" for v, m in re.findall(r"(\d+(?:\.\d+)?)% (accuracy|exact match)", text)]
    results += [f"{v}% {m.lower()}" for m, v in re.findall(r"(exact match|accuracy)(?:[^.%]|\.\d)*?\b(?:is|to|of) (\d+(?:\.\d+)?)%", text, re.I)]
    results = list(dict.fromkeys(results))
    results += [f"perplexity {v}" for v in re.findall(r"perplexity(?:[^.]|\.\d)*?\b(?:to|is|of|at) (\d+\.\d+)", text, re.I)]
    results += [f"{m} {v}" for m, v in re.findall(r"(BLEU|MRR@10|ROUGE)[^.]*?(\d+\.\d+)", text)]
    print("\t".join([pid, papers[pid]["title"], str(papers[pid]["year"]), ", ".join(datasets) or "-",
                     f"{speed:g}x" if speed else "-", f"{memory}%" if memory else "-", "; ".join(results) or "-"]))
print(f"# {len(ids)} papers extracted.")
