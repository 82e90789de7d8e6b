"""Which scenes make which Short: the grouping rules, on lengths alone."""

from __future__ import annotations

import pytest

from zray.media.short_groups import SceneSpan, group_shorts

FPS = 24


def scene(seconds: float, chapter: int | None = None, **extra) -> SceneSpan:
    return SceneSpan(frames=round(seconds * FPS), chapter=chapter, **extra)


def group(scenes, *, max_seconds=60.0, min_seconds=10.0, **extra):
    return group_shorts(scenes, fps=FPS, max_seconds=max_seconds, min_seconds=min_seconds, **extra)


def seconds(short) -> float:
    return short.frames / FPS


def test_consecutive_chapters_share_a_short_up_to_the_limit():
    result = group([scene(20, 0), scene(20, 1), scene(20, 2), scene(20, 3)])
    assert [s.scenes for s in result.shorts] == [(0, 1), (2, 3)]
    assert all(seconds(s) <= 60 for s in result.shorts) and not result.notes


def test_a_chapter_longer_than_a_short_is_split_at_scene_boundaries():
    chapter = [scene(15, 0) for _ in range(6)]  # 90 s
    result = group([*chapter, scene(30, 1)])
    # Two Shorts of 60 s: the long chapter cut once, between two of its scenes; fewer cannot fit.
    assert [s.scenes for s in result.shorts] == [(0, 1, 2, 3), (4, 5, 6)]
    assert all(seconds(s) <= 60 for s in result.shorts)


def test_a_chapter_is_not_split_when_grouping_whole_chapters_fits():
    # 37 s + 37 s would be more even, but would cut the two-scene chapter in the middle.
    result = group([scene(25, 0), scene(12, 1), scene(12, 1), scene(25, 2)], max_seconds=50)
    assert len(result.shorts) == 2
    assert all((1 in s.scenes) == (2 in s.scenes) for s in result.shorts)


def test_a_short_group_joins_a_neighbour_even_taking_scenes_from_a_long_chapter():
    # 58 s, 5 s, 58 s: "5 s" alone is too short, and whole chapters cannot be joined within 60 s.
    scenes = [scene(29, 0), scene(29, 0), scene(5, 1), scene(29, 2), scene(29, 2)]
    result = group(scenes)
    assert all(seconds(s) >= 10 for s in result.shorts)
    assert all(seconds(s) <= 60 for s in result.shorts)
    assert [i for s in result.shorts for i in s.scenes] == [0, 1, 2, 3, 4]
    assert any(2 in s.scenes and len(s.scenes) > 1 for s in result.shorts)


def test_lead_and_tail_count_toward_the_limit():
    # Two 29 s scenes fit 60 s, but not with a 1 s lead and a 2 s tail around them.
    result = group([scene(29, 0), scene(29, 1)], lead_seconds=1.0, tail_seconds=2.0)
    assert [s.scenes for s in result.shorts] == [(0,), (1,)]
    first = result.shorts[0]
    assert (first.lead, first.tail) == (24, 48) and first.frames == 24 + 29 * 24 + 48


def test_a_scene_with_its_own_pauses_gets_only_what_it_lacks():
    spans = [SceneSpan(frames=240, lead=7, trailing=48, chapter=0)]
    [short] = group(spans, lead_seconds=0.3, tail_seconds=2.0).shorts
    assert (short.lead, short.tail, short.frames) == (1, 0, 241)


def test_a_scene_longer_than_a_short_is_cut_after_the_last_sentence_that_fits():
    long = scene(80, 1, sentence_ends=(20 * FPS, 50 * FPS, 70 * FPS))
    result = group([scene(12, 0), long, scene(12, 2)], tail_seconds=2.0)
    assert [s.scenes for s in result.shorts] == [(0,), (1,), (2,)]
    cut = result.shorts[1]
    assert cut.cut == 50 * FPS and cut.tail == 48 and seconds(cut) <= 60
    assert "ends after the sentence that ends at 50.0 s" in result.notes[0]


def test_a_scene_longer_than_a_short_without_a_sentence_end_in_time_is_left_out():
    result = group([scene(20, 0), scene(90, 1, sentence_ends=(70 * FPS,)), scene(20, 2)])
    assert [s.scenes for s in result.shorts] == [(0,), (2,)]
    assert "left out of the Shorts" in result.notes[0]


def test_without_chapters_runs_of_scenes_make_even_shorts():
    result = group([scene(10) for _ in range(9)])  # 90 s, no chapters
    assert sorted(len(s.scenes) for s in result.shorts) == [4, 5]
    assert [i for s in result.shorts for i in s.scenes] == list(range(9))


def test_the_limit_is_three_minutes_for_a_short():
    assert len(group([scene(50, i) for i in range(4)]).shorts) == 4
    result = group([scene(50, i) for i in range(4)], max_seconds=180)
    assert [s.scenes for s in result.shorts] == [(0, 1), (2, 3)]  # two, of even length


@pytest.mark.parametrize("bad", [{"max_seconds": 0}, {"min_seconds": -1}])
def test_nonsense_limits_are_refused(bad):
    with pytest.raises(ValueError, match="max_seconds"):
        group([scene(10)], **bad)
