import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from zray.media.thumbnail import (
    BADGE_BOX,
    FONT_PATH,
    MAX_THUMB_BYTES,
    SAFE_BOX,
    THUMB_SIZE,
    ThumbnailError,
    cover_crop,
    layout_text,
    render_thumbnail,
    render_variants,
    thumbnail_layout,
)

SEED_TEXT = "EL BOSQUE MÁS PELIGROSO"
LONG_TEXT = (
    "¿POR QUÉ NADIE SOBREVIVE AQUÍ? LA VERDAD SOBRE EL PLANETA MÁS EXTRAÑO DE TODO EL UNIVERSO CONOCIDO"
)
LATIN_CHARS = "¿¡ÀÉÍÏÒÓÚÜÇÑ·àéíïòóúüçñ"


@functools.cache
def textured_base(width=1600, height=1000, seed=0):
    """A smooth, photo-like image: a colour gradient with mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    rgb = np.stack([60 + 120 * y, 80 + 100 * x, 140 - 60 * y * x], axis=-1) + rng.normal(
        0, 6, (height, width, 3)
    )
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def changed_mask(a, b):
    return np.abs(pixels(a) - pixels(b)).max(axis=-1) > 0


def inside(mask, box):
    left, top, right, bottom = box
    outside = mask.copy()
    outside[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = False
    return not outside.any()


def expand(box, by):
    left, top, right, bottom = box
    return (left - by, top - by, right + by, bottom + by)


def box_within(inner, outer):
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


# --- the bundled font ---------------------------------------------------------------------------------


def test_font_is_bundled_bold_and_licensed():
    assert FONT_PATH.is_file() and FONT_PATH.suffix == ".ttf"
    licences = [p for p in FONT_PATH.parent.iterdir() if "LICENSE" in p.name.upper()]
    assert licences and "Apache License" in licences[0].read_text()
    family, style = ImageFont.truetype(str(FONT_PATH), 20).getname()
    assert style in {"Bold", "ExtraBold", "Black", "Heavy"}, (family, style)


def glyph_bitmap(font, char):
    image = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(image).text((20, 130), char, font=font, fill=255, anchor="ls")
    return np.asarray(image)


def test_latin_glyphs_are_real_not_notdef_boxes():
    font = ImageFont.truetype(str(FONT_PATH), 100)
    notdef = glyph_bitmap(font, "\ue000")
    # Sanity: two surely-missing code points give the same, visible .notdef box.
    assert np.array_equal(notdef, glyph_bitmap(font, "\uffff")) and notdef.any()
    for char in LATIN_CHARS:
        bitmap = glyph_bitmap(font, char)
        assert bitmap.any(), f"{char!r} renders blank"
        assert not np.array_equal(bitmap, notdef), f"{char!r} renders as the .notdef box"


def test_a_catalan_headline_shows_its_accents_and_cedilla():
    """The glyph test the demo once carried as a headline: every accented capital is its base letter
    plus a mark, never the .notdef box, and the marks reach the rendered thumbnail."""
    font = ImageFont.truetype(str(FONT_PATH), 100)
    notdef = glyph_bitmap(font, "\ue000")
    for accented, plain in zip("ÀÉÍÒÓÚÇ", "AEIOOUC", strict=True):
        marked, bare = glyph_bitmap(font, accented) > 127, glyph_bitmap(font, plain) > 127
        assert not np.array_equal(glyph_bitmap(font, accented), notdef), accented
        assert (bare & ~marked).sum() < 0.05 * bare.sum(), f"{accented!r} lost its base letter"
        assert (marked & ~bare).sum() > 100, f"{accented!r} has no mark"
    headline = pixels(render_thumbnail(textured_base(), "NO SERIA VERD · ÀÉÍÒÓÚÇ"))
    unmarked = pixels(render_thumbnail(textured_base(), "NO SERIA VERD · AEIOOUC"))
    assert np.abs(headline - unmarked).mean() > 0.5


# --- cover_crop ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source_size", [(4000, 1000), (1920, 1080), (1000, 2000), (1280, 720), (16, 9), (3, 2), (1, 1)]
)
def test_cover_crop_fills_exactly_without_bars(source_size):
    colour = (200, 30, 90)
    out = cover_crop(Image.new("RGB", source_size, colour))
    assert out.size == THUMB_SIZE and out.mode == "RGB"
    corners = [(0, 0), (THUMB_SIZE[0] - 1, 0), (0, THUMB_SIZE[1] - 1), (THUMB_SIZE[0] - 1, THUMB_SIZE[1] - 1)]
    for corner in corners:
        assert out.getpixel(corner) == colour


@pytest.mark.parametrize("source_size", [(4000, 1000), (1000, 2000), (64, 64)])
def test_cover_crop_keeps_the_centre_and_crops_the_long_edges(source_size):
    width, height = source_size
    image = Image.new("RGB", source_size, (0, 0, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((width * 0.45, height * 0.45, width * 0.55, height * 0.55), fill=(255, 0, 0))
    # Stripes at the far ends of the long axis lie outside a 16:9 centre crop for these shapes.
    if width / height > 16 / 9:
        draw.rectangle((0, 0, width * 0.05, height), fill=(0, 255, 0))
        draw.rectangle((width * 0.95, 0, width, height), fill=(0, 255, 0))
    else:
        draw.rectangle((0, 0, width, height * 0.05), fill=(0, 255, 0))
        draw.rectangle((0, height * 0.95, width, height), fill=(0, 255, 0))
    out = pixels(cover_crop(image))
    assert tuple(out[360, 640]) == (255, 0, 0)
    assert (out[:, :, 1] < 60).all(), "the cropped-away stripes must not appear"


def test_cover_crop_other_size_and_alpha_input():
    rgba = Image.new("RGBA", (300, 300), (10, 200, 10, 0))
    out = cover_crop(rgba, (320, 180))
    assert out.size == (320, 180) and out.mode == "RGB"
    assert out.getpixel((160, 90)) == (0, 0, 0), "fully transparent pixels composite over black"


@pytest.mark.parametrize("size", [(0, 720), (1280, -1), (12.5, 10), "big"])
def test_cover_crop_rejects_bad_sizes(size):
    with pytest.raises(ThumbnailError, match="size"):
        cover_crop(Image.new("RGB", (10, 10)), size)


# --- layout -------------------------------------------------------------------------------------------


def test_safe_box_keeps_margins_and_clears_the_badge():
    left, top, right, bottom = SAFE_BOX
    width, height = THUMB_SIZE
    assert left >= 0.05 * width - 1 and right <= 0.95 * width + 1 and top >= 0.05 * height - 1
    assert (width - 200, height - 80, width, height) == BADGE_BOX
    assert bottom < BADGE_BOX[1]


@pytest.mark.parametrize(
    "text", [SEED_TEXT, LONG_TEXT, "¡SÍ!", "gjpqy lowercase descenders here", LATIN_CHARS]
)
def test_layout_fits_the_safe_box_in_at_most_three_lines(text):
    layout = thumbnail_layout(text)
    assert 1 <= len(layout.lines) <= 3
    assert " ".join(layout.lines) == " ".join(text.split()), "words must be kept whole and in order"
    for line_box in layout.line_boxes:
        assert box_within(line_box, SAFE_BOX), (line_box, SAFE_BOX)
    tops = [box[1] for box in layout.line_boxes]
    bottoms = [box[3] for box in layout.line_boxes]
    assert all(bottoms[i] <= tops[i + 1] for i in range(len(tops) - 1)), "lines must not overlap"


def test_long_text_gets_a_smaller_font_than_short_text():
    short, seed, long = thumbnail_layout("¡SÍ!"), thumbnail_layout(SEED_TEXT), thumbnail_layout(LONG_TEXT)
    assert short.font_size >= seed.font_size > long.font_size
    assert len(long.lines) == 3
    assert seed.font_size >= 0.15 * THUMB_SIZE[1], "the seed title should be large"


def test_layout_picks_the_largest_size_that_fits():
    box = (0, 0, 600, 300)
    layout = layout_text(SEED_TEXT, box=box)
    with pytest.raises(ThumbnailError, match="does not fit"):
        size = layout.font_size + 1
        layout_text(SEED_TEXT, box=box, min_font_size=size, max_font_size=size)


def test_a_word_too_wide_for_the_box_shrinks_instead_of_breaking():
    word = "ELECTROENCEFALOGRAFISTAS"
    layout = layout_text(word, box=(0, 0, 400, 400))
    assert layout.lines == (word,)
    assert box_within(layout.bbox, (0, 0, 400, 400))
    assert layout.bbox[2] - layout.bbox[0] > 350, "it should shrink only as far as needed"


def test_layout_alignment_options():
    box = (100, 50, 1100, 650)
    centred = layout_text("UNO DOS TRES", box=box, max_font_size=80, halign="center", valign="top")
    assert centred.bbox[1] == box[1], "valign='top' puts the first line's ink at the top"
    for left, _, right, _ in centred.line_boxes:
        assert abs((left + right) / 2 - 600) <= 1
    bottom_right = layout_text("UNO DOS TRES", box=box, max_font_size=80, halign="right")
    assert bottom_right.bbox[3] == box[3] and all(line[2] == box[2] for line in bottom_right.line_boxes)
    with pytest.raises(ThumbnailError, match="halign"):
        layout_text("UNO", box=box, halign="middle")


def test_layout_errors_name_the_problem():
    with pytest.raises(ThumbnailError, match="empty"):
        layout_text("   ", box=SAFE_BOX)
    with pytest.raises(ThumbnailError, match="does not fit"):
        thumbnail_layout("PALABRA " * 200)
    with pytest.raises(ThumbnailError, match="box"):
        layout_text("HOLA", box=(10, 10, 5, 50))
    with pytest.raises(ThumbnailError, match="cannot load font"):
        layout_text("HOLA", box=SAFE_BOX, font_path="/nonexistent/font.ttf")


words = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZÁÉÍÓÚÑÜ¿?¡!", min_size=1, max_size=12)


@settings(max_examples=30, deadline=None)
@given(st.lists(words, min_size=1, max_size=14), st.sampled_from([1, 2, 3]))
def test_layout_properties(word_list, max_lines):
    box = (50, 40, 1000, 500)
    text = " ".join(word_list)
    try:
        layout = layout_text(text, box=box, max_lines=max_lines, min_font_size=10)
    except ThumbnailError:
        return  # a genuinely too-long text is allowed to be refused
    assert len(layout.lines) <= max_lines
    assert " ".join(layout.lines) == text
    assert all(box_within(line_box, box) for line_box in layout.line_boxes)


# --- rendering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [SEED_TEXT, LONG_TEXT, "¡SÍ!", "gjpqy lowercase descenders here"])
def test_text_pixels_stay_in_the_safe_box_and_off_the_badge(text):
    base = textured_base()
    plain = render_thumbnail(base, None)
    mask = changed_mask(render_thumbnail(base, text, shade=False), plain)
    layout = thumbnail_layout(text)
    assert mask.sum() > 0.01 * mask.size
    assert layout.spill <= 0.04 * THUMB_SIZE[1], "the shadow must stay a thin rim"
    assert inside(mask, expand(SAFE_BOX, layout.spill))
    assert inside(mask, layout.paint_box)
    left, top, right, bottom = BADGE_BOX
    assert not mask[top:bottom, left:right].any(), "text must never touch the timestamp badge"
    # With the gradient on, pixels outside the text's reach may only get darker, never covered.
    shaded = pixels(render_thumbnail(base, text))
    outer = np.ones(mask.shape, dtype=bool)
    pl, pt, pr, pb = layout.paint_box
    outer[pt:pb, pl:pr] = False
    assert (shaded[outer] <= pixels(plain)[outer]).all()


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0)])
def test_text_contrasts_strongly_with_white_and_black_bases(colour):
    base = Image.new("RGB", (1920, 1080), colour)
    for shade in (False, True):
        rendered = pixels(render_thumbnail(base, SEED_TEXT, shade=shade))
        diff = np.abs(rendered - np.array(colour)).max(axis=-1)
        text_pixels = diff[
            changed_mask(render_thumbnail(base, SEED_TEXT, shade=False), base.resize(THUMB_SIZE))
        ]
        assert text_pixels.size > 0.02 * diff.size
        assert np.median(text_pixels) > 200, f"text on {colour} must stand out (shade={shade})"


def test_no_text_gives_just_the_crop():
    base = textured_base()
    expected = pixels(cover_crop(base))
    for text in (None, "", "   \n"):
        assert np.array_equal(pixels(render_thumbnail(base, text)), expected)


def test_render_thumbnail_other_size():
    out = render_thumbnail(textured_base(), SEED_TEXT, size=(640, 360))
    assert out.size == (640, 360)


# --- variants -----------------------------------------------------------------------------------------


def test_render_variants_writes_named_pngs(tmp_path):
    texts = [SEED_TEXT, "EL PLANETA IMPOSIBLE", None]
    paths = render_variants(textured_base(), texts, tmp_path / "thumbnails", lang="es")
    assert [p.name for p in paths] == ["thumbnail_es_v1.png", "thumbnail_es_v2.png", "thumbnail_es_v3.png"]
    images = []
    for path in paths:
        assert path.parent == tmp_path / "thumbnails" and path.stat().st_size < MAX_THUMB_BYTES
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == THUMB_SIZE
            images.append(pixels(image))
    assert not np.array_equal(images[0], images[1])
    assert np.array_equal(images[2], pixels(cover_crop(textured_base())))
    assert sorted(p.name for p in (tmp_path / "thumbnails").iterdir()) == [p.name for p in paths]


def test_noisy_base_still_fits_youtubes_size_limit(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    (path,) = render_variants(Image.fromarray(noise), [SEED_TEXT], tmp_path, lang="en")
    assert path.stat().st_size <= MAX_THUMB_BYTES
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == THUMB_SIZE


def test_render_variants_rejects_bad_arguments(tmp_path):
    base = Image.new("RGB", (64, 36))
    with pytest.raises(ThumbnailError, match="lang"):
        render_variants(base, ["HOLA"], tmp_path, lang="../es")
    with pytest.raises(ThumbnailError, match="texts"):
        render_variants(base, [], tmp_path, lang="es")
    with pytest.raises(ThumbnailError, match="does not fit"):
        render_variants(base, ["HOLA", "PALABRA " * 200], tmp_path, lang="es")
    assert list(tmp_path.iterdir()) == [], "a failing set must leave no files behind"
