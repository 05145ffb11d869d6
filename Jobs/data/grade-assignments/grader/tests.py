"""The assignment's tests: each `test_*` function takes the student's module."""


def test_word_count_basic(m):
    assert m.word_count("the quick brown fox") == 4


def test_word_count_whitespace(m):
    assert m.word_count("  one\ttwo\n\nthree  ") == 3
    assert m.word_count("") == 0


def test_top_words_order(m):
    text = "b a c b a b"
    assert m.top_words(text, 2) == [("b", 3), ("a", 2)]


def test_top_words_ties_and_punctuation(m):
    text = "Pear, apple! pear. Apple fig"
    assert m.top_words(text, 3) == [("apple", 2), ("pear", 2), ("fig", 1)]


def test_is_palindrome_simple(m):
    assert m.is_palindrome("racecar") is True
    assert m.is_palindrome("grader") is False


def test_is_palindrome_sentence(m):
    assert m.is_palindrome("A man, a plan, a canal: Panama!") is True


def test_mean(m):
    assert m.mean([1, 2, 3, 4]) == 2.5


def test_mean_empty_raises(m):
    try:
        m.mean([])
    except ValueError:
        return
    raise AssertionError("mean([]) must raise ValueError")


def test_chunk(m):
    assert m.chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert m.chunk([], 3) == []


def test_chunk_bad_size(m):
    try:
        m.chunk([1], 0)
    except ValueError:
        return
    raise AssertionError("chunk(items, 0) must raise ValueError")
