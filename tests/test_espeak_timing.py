"""espeak-ng's word timings against a reference measured on its own audio.

The reference: SSML breaks of known length between the words, so each word after a break starts where
a long silence ends; that onset is found from the audio's energy alone, without the engine's events.
A word starting with a stop consonant ("t", "k") has a silent closure before its burst, so the measured
onset sits a little after the true start: the bounds (median under 60 ms, worst under 150 ms) allow it.
"""

from __future__ import annotations

import numpy as np
import pytest

from zray.engines.espeak import DEFAULT_RATE, EspeakTTSEngine, speak

SENTENCES = {
    "es": "El faro se alza sobre el acantilado desde hace más de cien años, y cada noche guía a los barcos.",
    "en": "The lighthouse has stood on the cliff for more than a hundred years, guiding lost ships home.",
    "ca": "El far s'alça sobre el penya-segat des de fa més de cent anys, i cada nit guia els vaixells.",
}
FRAME = 0.005  # seconds of audio per energy value
MIN_SILENCE = 0.15  # a pause this long is a break, never a consonant's closure at this rate


def breaks(count: int) -> list[int]:
    """Break lengths in ms, 250 to 450, different from word to word so no rhythm can hide an offset."""
    return [250 + (97 * index) % 201 for index in range(count)]


def silences(samples: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start, end) of each run of near-silence at least MIN_SILENCE long that sound follows."""
    hop = round(rate * FRAME)
    frames = samples.size // hop
    energy = np.sqrt(np.mean(samples[: frames * hop].reshape(frames, hop) ** 2, axis=1))
    quiet = energy < 0.02 * energy.max()  # 34 dB under the loudest frame
    runs, index = [], 0
    while index < frames:
        if not quiet[index]:
            index += 1
            continue
        end = index
        while end < frames and quiet[end]:
            end += 1
        if (end - index) * FRAME >= MIN_SILENCE and end < frames:
            runs.append((index * FRAME, end * FRAME))
        index = end
    return runs


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_word_starts_match_the_energy_onsets_after_breaks(lang: str) -> None:
    words = SENTENCES[lang].split()
    pauses = breaks(len(words) - 1)
    ssml = (
        "<speak>"
        + " ".join(f'{w}<break time="{ms}ms"/>' for w, ms in zip(words[:-1], pauses, strict=True))
        + f" {words[-1]}</speak>"
    )
    speech = speak(ssml, voice=EspeakTTSEngine().voice_for(lang), rate=DEFAULT_RATE, ssml=True)
    timed = speech.words or []
    assert [w.word for w in timed] == [w.strip(",.") for w in words]

    runs = silences(speech.samples[0], speech.sample_rate)
    # The reference measures the breaks: one long silence per break, each at least as long as asked.
    assert len(runs) == len(pauses)
    for (begin, end), ms in zip(runs, pauses, strict=True):
        assert end - begin >= ms / 1000 - 0.03
    errors = np.array([timed[k + 1].start - onset for k, (_, onset) in enumerate(runs)])
    assert np.median(np.abs(errors)) < 0.060, errors
    assert np.abs(errors).max() < 0.150, errors


def test_the_engine_times_plain_text_as_the_reference_path_does() -> None:
    """synthesize() and speak() are one path: the same audio and the same word events."""
    text = SENTENCES["es"]
    direct = speak(text, voice="es", rate=DEFAULT_RATE)
    engine = EspeakTTSEngine().synthesize(text, lang="es")
    assert np.array_equal(direct.samples, engine.samples)
    assert direct.words == engine.words
