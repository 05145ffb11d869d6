from collections import Counter

PUNCTUATION = ".,;:!?\"'()"


def word_count(text):
    return len(text.split())


def top_words(text, n):
    words = [w.strip(PUNCTUATION).lower() for w in text.split()]
    counts = Counter(w for w in words if w)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def is_palindrome(s):
    letters = [c.lower() for c in s if c.isalnum()]
    return letters == letters[::-1]


def mean(numbers)
    if not numbers:
        raise ValueError("mean of an empty list")
    return sum(numbers) / len(numbers)


def chunk(items, size):
    if size < 1:
        raise ValueError("size must be at least 1")
    return [items[i:i + size] for i in range(0, len(items), size)]
