"""A stand-in for `segments` on the benchmark's GPU machine, where it is not installed.

phonemizer imports it for its "segments" backend (its annotations name Profile and Tokenizer), which
the benchmark never uses: Kokoro's Spanish goes through espeak-ng. The real package would bring
csvw, rdflib and a dozen more with it. Using anything here is an error.
"""

__version__ = "0.0.0"


class _Unavailable:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise ImportError(
            "this is the benchmark's stand-in for segments; phonemizer's segments backend needs the real one"
        )


class Profile(_Unavailable):
    pass


class Tokenizer(_Unavailable):
    pass
