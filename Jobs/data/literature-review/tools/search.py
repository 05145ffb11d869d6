"""Ranks the corpus against the question in a file (BM25 over title and abstract) and prints the
papers that match, best first: `ID  TITLE (YEAR)  score S`."""
import math
import sys

from corpus import load, words

question = open(sys.argv[1], encoding="utf-8").read().strip()
papers = load()
docs = {pid: words(p["title"] + " " + p["text"]) for pid, p in papers.items()}
average = sum(len(d) for d in docs.values()) / len(docs)
terms = set(words(question))
df = {t: sum(1 for d in docs.values() if t in d) for t in terms}
scores = {}
for pid, doc in docs.items():
    score = 0.0
    for t in terms:
        tf = doc.count(t)
        if tf:
            idf = math.log(1 + (len(docs) - df[t] + 0.5) / (df[t] + 0.5))
            score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(doc) / average))
    if score > 0:
        scores[pid] = score
best = sorted(scores, key=lambda pid: (-scores[pid], pid))
top = scores[best[0]] if best else 0
found = [pid for pid in best if scores[pid] >= top * 0.35][:8]
print(f"Searched {len(papers)} abstracts for: {question.splitlines()[0]}")
for pid in found:
    print(f"{pid}  {papers[pid]['title']} ({papers[pid]['year']})  score {scores[pid]:.2f}")
print(f"{len(found)} papers found.")
