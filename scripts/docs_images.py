"""Pictures for the README: one frame of each style, and contact sheets.

    python -m scripts.docs_images

Writes ``samples/artwork.png`` (a synthesised cover, if missing),
``docs/styles/<style>.png`` and ``docs/contact-sheet.png`` (from
``samples/sample.mp3``), and ``docs/episode-sheet.png``: the speech-over-music
episode (``samples/episode.mp3`` and its long-cued ``episode.srt``, made by
``scripts.make_episode``) on every preset, with artwork, a two-line title, a
subtitle and captions, at moments where long cues show as pages; and
``docs/word-captions.png``: the episode with word-timed captions (a Whisper-style
transcript whose word times are spread over each cue of ``episode.srt``), the word
being said highlighted; and ``docs/backdrop.png``: the episode over a looping video
background (a synthetic 720p loop made here with ffmpeg), blurred and darkened. All are
drawn by ``render.render_frames`` exactly as a video would be.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from render import STYLES, Assets, RenderSpec, render_frames
from render.audio import ffmpeg_exe
from render.captions import parse_captions, spread_words
from tests.helpers.media import make_artwork

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DOCS = ROOT / "docs"
ARTWORK = SAMPLES / "artwork.png"
#: Per style, a look that shows what it can do.
LOOKS: dict[str, dict[str, object]] = {
    "bars": {"color": "#ffd166", "color2": "#ef476f", "background": "#1b1f3a",
             "background2": "#3a1c4a"},
    "mirror": {"color": "#06d6a0", "color2": "#118ab2", "background": "#0b1320"},
    "wave": {"color": "#f1faee", "color2": "#a8dadc", "background": "#1d3557",
             "background2": "#457b9d"},
    "circle": {"color": "#ffafcc", "color2": "#cdb4db", "background": "#22223b",
               "background2": "#4a4e69"},
    "progress": {"color": "#ff7f50", "background": "#121212"},
}
MOMENT = 6.3  # seconds: a busy moment of the sample, with a caption showing


def main() -> None:
    if not ARTWORK.exists():
        make_artwork(ARTWORK)
    (DOCS / "styles").mkdir(parents=True, exist_ok=True)
    assets = Assets(artwork=ARTWORK, captions=SAMPLES / "sample.srt")
    tiles = []
    for style in STYLES:
        spec = RenderSpec.model_validate(
            {"style": style, "width": 1280, "height": 720, "title": "The soundreel sample",
             "subtitle": f"Episode 1 · style: {style}", "artworkKey": "local/artwork",
             "captionsKey": "local/captions", **LOOKS[style]}
        )
        (frame,) = render_frames(SAMPLES / "sample.mp3", spec, [MOMENT], assets=assets)
        image = Image.fromarray(frame)
        image.save(DOCS / "styles" / f"{style}.png", optimize=True)
        tiles.append(image.resize((640, 360), Image.Resampling.LANCZOS))
    columns = 2
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (640 * columns, 360 * rows), (0, 0, 0))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * 640, (index // columns) * 360))
    sheet.save(DOCS / "contact-sheet.png", optimize=True)
    print(f"wrote {DOCS / 'contact-sheet.png'} and {len(tiles)} style pictures")
    episode_sheet()
    word_captions()
    backdrop_frame()


#: The episode on each preset, in a style of its own, and the moments shown: the first
#: and second page of the first cue, a one-page cue, the third cue and the last.
EPISODE_PRESETS = {"square": "bars", "portrait": "wave", "landscape": "circle"}
EPISODE_MOMENTS = (3.0, 8.5, 12.0, 17.0, 29.0)
EPISODE_TILE_HEIGHT = 360


def episode_sheet() -> None:
    assets = Assets(artwork=ARTWORK, captions=SAMPLES / "episode.srt")
    rows = []
    for preset, style in EPISODE_PRESETS.items():
        spec = RenderSpec.model_validate(
            {"preset": preset, "style": style, "title": "Episode 42: How sound travels under "
             "water", "subtitle": "The Soundreel Show with Ada and Grace",
             "artworkKey": "local/artwork", "captionsKey": "local/captions",
             **LOOKS[style]}
        )  # fmt: skip
        frames = render_frames(SAMPLES / "episode.mp3", spec, list(EPISODE_MOMENTS), assets=assets)
        tiles = []
        for frame in frames:
            image = Image.fromarray(frame)
            width = round(image.width * EPISODE_TILE_HEIGHT / image.height)
            tiles.append(image.resize((width, EPISODE_TILE_HEIGHT), Image.Resampling.LANCZOS))
        rows.append(tiles)
    gap = 8
    width = max(sum(tile.width for tile in row) + gap * (len(row) - 1) for row in rows)
    height = EPISODE_TILE_HEIGHT * len(rows) + gap * (len(rows) - 1)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            sheet.paste(tile, (x, r * (EPISODE_TILE_HEIGHT + gap)))
            x += tile.width + gap
    sheet.save(DOCS / "episode-sheet.png", optimize=True)
    print(f"wrote {DOCS / 'episode-sheet.png'}")


#: When the word-timed frame is taken: "water," on the first cue's second page.
WORD_MOMENT = 6.1


def word_captions() -> None:
    """The episode with word-timed captions, one frame with a word highlighted."""
    segments = []
    for cue in parse_captions((SAMPLES / "episode.srt").read_bytes()):
        words = spread_words(cue.text.split(), cue.start, cue.end)
        segments.append({"start": cue.start, "end": cue.end, "text": " " + cue.text,
                         "words": [{"word": " " + word.text, "start": round(word.start, 3),
                                    "end": round(word.end, 3)} for word in words]})
    with tempfile.TemporaryDirectory() as tmp:
        transcript = Path(tmp) / "episode.json"
        transcript.write_text(json.dumps({"segments": segments}), encoding="utf-8")
        spec = RenderSpec.model_validate(
            {"style": "mirror", "width": 1280, "height": 720, "title": "Episode 42: How sound "
             "travels under water", "subtitle": "The Soundreel Show with Ada and Grace",
             "artworkKey": "local/artwork", "captionsKey": "local/captions", **LOOKS["mirror"]}
        )  # fmt: skip
        assets = Assets(artwork=ARTWORK, captions=transcript)
        (frame,) = render_frames(SAMPLES / "episode.mp3", spec, [WORD_MOMENT], assets=assets)
    Image.fromarray(frame).save(DOCS / "word-captions.png", optimize=True)
    print(f"wrote {DOCS / 'word-captions.png'}")


#: The video background's picture: drifting colour gradients under a faint Mandelbrot
#: zoom, 6 s at 1280x720 (what a looping stock clip might be).
BACKDROP_GRAPH = (
    "gradients=s=1280x720:r=30:d=6:speed=0.02:n=4:c0=0x203060:c1=0xd06030:c2=0x40a080:"
    "c3=0x602080,format=yuv420p[g];mandelbrot=s=1280x720:r=30,trim=duration=6,"
    "format=yuv420p[m];[g][m]blend=all_mode=screen:all_opacity=0.35[out]"
)
BACKDROP_MOMENT = 8.5


def backdrop_frame() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "loop.mp4"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-filter_complex", BACKDROP_GRAPH,
                        "-map", "[out]", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-t", "6",
                        str(video)], check=True, timeout=300)
        spec = RenderSpec.model_validate(
            {"width": 1280, "height": 720, "style": "bars", "title": "Episode 42: How sound "
             "travels under water", "subtitle": "The Soundreel Show with Ada and Grace",
             "artworkKey": "local/artwork", "captionsKey": "local/captions",
             "backgroundVideoKey": "local/loop.mp4", "backgroundBlur": 6,
             "backgroundDarken": 0.35, "color": "#ffffff", "color2": "#ffd166"}
        )  # fmt: skip
        assets = Assets(artwork=ARTWORK, captions=SAMPLES / "episode.srt",
                        background_video=video)
        (frame,) = render_frames(SAMPLES / "episode.mp3", spec, [BACKDROP_MOMENT], assets=assets)
    Image.fromarray(frame).save(DOCS / "backdrop.png", optimize=True)
    print(f"wrote {DOCS / 'backdrop.png'}")


if __name__ == "__main__":
    main()
