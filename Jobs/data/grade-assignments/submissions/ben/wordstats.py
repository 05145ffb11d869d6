import re


def word_count(text):
    return len(re.findall(r"\S+", text))


def top_words(text, n):
    counts = {}
    for raw in text.split():
        word = raw.strip(".,;:!?\"'()").lower()
        if word:
            counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return [(w, counts[w]) for w in ranked[:n]]


def is_palindrome(s):
    cleaned = "".join(ch for ch in s.lower() if ch.isalnum())
    i, j = 0, len(cleaned) - 1
    while i < j:
        if cleaned[i] != cleaned[j]:
            return False
        i += 1
        j -= 1
    return True


def mean(numbers):
    numbers = list(numbers)
    if len(numbers) == 0:
        raise ValueError("empty")
    total = 0
    for x in numbers:
        total += x
    return total / len(numbers)


def chunk(items, size):
    if size < 1:
        raise ValueError("bad size")
    out, current = [], []
    for item in items:
        current.append(item)
        if len(current) == size:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out
