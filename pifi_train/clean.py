"""The authors' text cleaning (``--clean-text html``): HTML to text, whitespace collapsed.

Their classification preprocessing (khyun8072/PiFi, Classification/task/classification/
preprocessing.py:464-466) runs every text through ``BeautifulSoup(text, "lxml").text``,
replaces newlines, tabs and carriage returns by spaces and joins the words with one space.
IMDB's ``<br />`` tags otherwise use up the 100-token budget. Needs ``pifi[paper]`` (bs4, lxml).
"""

from __future__ import annotations

from typing import Callable, Sequence

from pifi_extract.errors import ConfigError

CLEANINGS = ("auto", "html", "none")
# the paper's classification tasks are cleaned by the authors; entailment (mnli, snli) and local files are not
_CLEANED_TASKS = frozenset({"sst2", "imdb", "tweet_sentiment_binary", "tweet_offensive", "cola", "cr", "nsmc",
                            "filmstarts", "sst5", "subj", "trec", "agnews", "dbpedia", "mr"})


def resolve_cleaning(clean_text: str, task: str | None) -> str:
    """``html`` or ``none``: ``auto`` is html for the paper's classification tasks, none otherwise."""
    if clean_text not in CLEANINGS:
        raise ConfigError(f"--clean-text must be one of {', '.join(CLEANINGS)}, got {clean_text!r}")
    if clean_text != "auto":
        return clean_text
    return "html" if task is not None and task.lower() in _CLEANED_TASKS else "none"


def html_cleaner() -> Callable[[str], str]:
    """The cleaning function (bs4 + lxml imported once); one-line error when they are missing."""
    try:
        import bs4
        import lxml  # noqa: F401  (the parser bs4 is asked for)
    except ImportError as err:
        raise ConfigError("--clean-text html needs beautifulsoup4 and lxml",
                          "pip install 'pifi[paper]', or pass --clean-text none") from err

    import warnings

    def clean(text: str) -> str:
        with warnings.catch_warnings():  # a text that looks like a URL or file name is still a text
            warnings.simplefilter("ignore", bs4.MarkupResemblesLocatorWarning)
            plain = bs4.BeautifulSoup(text, "lxml").text
        plain = plain.replace("\n", " ").replace("\t", " ").replace("\r", " ")
        return " ".join(plain.split())

    return clean


def clean_texts(texts: Sequence[str], how: str) -> list[str]:
    """``texts`` cleaned as ``how`` (html | none) says."""
    if how == "none":
        return list(texts)
    clean = html_cleaner()
    return [clean(t) for t in texts]
