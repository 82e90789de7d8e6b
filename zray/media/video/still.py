"""Still scenes, encoded once each, at a cost that does not grow with the scene's length.

A still is encoded by `encode_still` as one closed GOP of `gop` frames into a raw H.264 segment:
x264's IDR picture, then skip pictures that repeat it (written by `bitstream.skip_picture`, not by
x264). `mux.assemble` fills a scene of N frames with N // gop copies of that GOP's packets plus its
first N % gop packets, restamped, so a 20-second scene costs the same encode as a 2-second one.
Every GOP opens with an IDR picture carrying its own SPS/PPS, so each copy decodes on its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
from PIL import Image, ImageOps

from zray.media.video.bitstream import nal_units, skip_picture, stream_format
from zray.media.video.encoder import open_encoder, to_yuv
from zray.media.video.settings import VideoError, VideoSettings, check_threads


def _load_image(image: str | os.PathLike[str] | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    try:
        with Image.open(image) as opened:
            opened.load()
            return opened.copy()
    except (OSError, ValueError) as error:
        raise VideoError(f"cannot read scene image {os.fspath(image)}: {error}") from error


def encode_still(
    image: str | os.PathLike[str] | Image.Image,
    dest: str | os.PathLike[str],
    *,
    settings: VideoSettings,
    threads: int = 0,
) -> None:
    """Encode one still as a closed GOP of `settings.gop` frames into a raw H.264 segment at dest.

    The image is cover-cropped to the output size (scaled to fill it, the overflow cut evenly).
    x264 codes only the IDR picture; the other frames are skip pictures (see `bitstream.skip_picture`).
    `threads` caps x264's threads; 0 lets it use every core, which oversubscribes a machine that
    already runs one encode per core (give 1 there, or the task's CPU share).
    """
    check_threads(threads)
    picture = _load_image(image).convert("RGB")
    if picture.size != (settings.width, settings.height):
        picture = ImageOps.fit(picture, (settings.width, settings.height), method=Image.Resampling.LANCZOS)
    frame = to_yuv(av.VideoFrame.from_image(picture), settings.width, settings.height)
    idr = _idr_picture(frame, open_encoder(settings, still=True, threads=threads), limit=settings.gop)
    units = [unit for unit in nal_units(idr) if unit]
    stream = stream_format(units)
    path = Path(dest)
    try:
        with path.open("wb") as out:
            out.write(idr)
            for index in range(1, settings.gop):
                out.write(skip_picture(stream, index))
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _idr_picture(frame: av.VideoFrame, ctx: av.VideoCodecContext, *, limit: int) -> bytes:
    """x264's first picture of a GOP of `limit` copies of frame, without coding the rest of the GOP.

    x264 sets the IDR's quantizers from the frames in its lookahead (for a still, every later frame
    refers back to it, so macroblock-tree spends more bits on it), and emits it once the lookahead
    is full. Until then the lookahead holds exactly what a full encode of the GOP would hold, so the
    IDR is byte for byte the one a full encode writes; the encoder is then dropped unflushed.
    """
    for index in range(limit):
        frame.pts = index
        packets = ctx.encode(frame)
        if packets:
            return bytes(packets[0])
    return bytes(ctx.encode(None)[0])
