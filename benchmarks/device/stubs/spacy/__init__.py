"""A stand-in for spaCy on the benchmark's GPU machine, where spaCy is not installed.

misaki imports spaCy when Kokoro's pipeline module loads, but only its English G2P calls it; the
benchmark speaks Spanish (espeak-ng), so nothing here is ever used. Any use is an error, loudly.
"""


def __getattr__(name: str):
    raise ImportError(f"spacy.{name}: this is the benchmark's stand-in; English G2P needs the real spaCy")
