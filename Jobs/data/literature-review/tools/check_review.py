"""Checks a review and prints what the batch report keeps, as JSON: the papers in its evidence
table, the datasets it names, the fastest method, and its length."""
import json
import re
import sys

review = open(sys.argv[1], encoding="utf-8").read()
papers = re.findall(r"^\| ([LSRD]\d\d) ", review, re.M)
datasets = re.search(r"reporting on (\d+) datasets", review)
fastest = re.search(r"Fastest reported: .*\(([LSRD]\d\d)\), ([\d.]+x)", review)
sections = re.findall(r"^## (.+)$", review, re.M)
print(json.dumps({
    "papers": len(papers),
    "datasets": int(datasets.group(1)) if datasets else 0,
    "fastest": f"{fastest.group(1)} {fastest.group(2)}" if fastest else "none",
    "sections": ", ".join(sections),
    "words": len(review.split()),
    "ok": bool(papers) and sections == ["Findings", "Evidence", "Method"],
}))
