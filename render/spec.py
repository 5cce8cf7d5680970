"""What to render: one validated `RenderSpec`.

The API's job ``options`` are parsed straight into this model, so a bad value is
refused at submit time with the field named, and the worker renders exactly what
was accepted. Defaults are what most podcast clips want: 1280x720 at 30 fps, bars.

Images and captions are named by object keys (``backgroundKey``, ``artworkKey``,
``captionsKey``); the worker fetches them and hands the renderer local paths
through `Assets`, so this package never touches storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Frame rates the encoder settings are tuned for (film, PAL, NTSC-ish, and double).
FRAME_RATES = (24, 25, 30, 50, 60)
#: Largest canvas: 4K UHD, in either orientation (3840x2160 or 2160x3840).
MAX_SIDE = 3840
MAX_PIXELS = 3840 * 2160
#: Smallest canvas side; below this x264 and players misbehave.
MIN_SIDE = 16
#: Preview clips: this wide, this long.
PREVIEW_WIDTH = 480
PREVIEW_SECONDS = 15.0
#: Canvas presets for the common social formats.
PRESETS: dict[str, tuple[int, int]] = {
    "square": (1080, 1080),
    "portrait": (1080, 1920),
    "landscape": (1920, 1080),
}
#: x264's constant rate factor: lower is better and bigger. 23 is x264's own default.
DEFAULT_QUALITY = 23
#: What this renderer makes of a spec. Part of every render cache key (docs/cache.md):
#: bump it with any change that alters the output of the same audio and options (the
#: drawing, layout, fonts, captions, encoder settings, the bundled ffmpeg), and every
#: cached output made before is passed over.
RENDERER_VERSION = 1

Style = Literal["bars", "mirror", "wave", "circle", "progress"]
#: Every style, in the order documentation and benchmarks show them.
STYLES: tuple[str, ...] = get_args(Style)
Layout = Literal["standard", "minimal"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
#: How an intro or outro video meets the canvas: scaled to cover it (cropping the
#: overflow) or to fit inside it (the rest filled with the background colour).
Fit = Literal["cover", "fit"]
FITS: tuple[str, ...] = get_args(Fit)
#: Longest fade in or out, seconds.
MAX_FADE_SECONDS = 10.0

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*$")

RGB = tuple[int, int, int]


def parse_color(value: str) -> RGB:
    """``#rgb`` or ``#rrggbb`` to an (r, g, b) tuple."""
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _check_color(value: str) -> str:
    if not _HEX.match(value):
        raise ValueError("must be a hex colour like #1e90ff or #fff")
    return value.lower()


class RenderSpec(BaseModel):
    """The look, size and clip window of a video. Unknown fields are an error.

    Field names are the API's (camelCase aliases); Python code may use either.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # canvas
    preset: Literal["square", "portrait", "landscape"] | None = Field(
        None, description="sets width and height; give either a preset or a size"
    )
    width: int = Field(1280, ge=MIN_SIDE, le=MAX_SIDE, description="even, pixels")
    height: int = Field(720, ge=MIN_SIDE, le=MAX_SIDE, description="even, pixels")
    fps: int = Field(30, description="one of 24, 25, 30, 50, 60")
    quality: int = Field(DEFAULT_QUALITY, ge=14, le=40, description="x264 crf; lower is better")

    # the animation
    style: Style = "bars"
    color: str = Field("#f5f5f5", description="waveform colour")
    color2: str | None = Field(None, description="second colour: a gradient along the bars")
    rounded: bool = Field(True, description="bars: rounded ends")
    filled: bool = Field(True, description="wave: filled waveform, or a line (oscilloscope)")

    # the look
    background: str = Field("#14161f", description="background colour")
    background2: str | None = Field(None, description="second colour: a diagonal gradient")
    background_key: str | None = Field(None, alias="backgroundKey", max_length=512)
    background_blur: float = Field(0.0, alias="backgroundBlur", ge=0, le=100)
    background_darken: float = Field(0.0, alias="backgroundDarken", ge=0, le=1)
    artwork_key: str | None = Field(None, alias="artworkKey", max_length=512)
    title: str | None = Field(None, max_length=200)
    subtitle: str | None = Field(None, max_length=300)
    background_video_key: str | None = Field(
        None, alias="backgroundVideoKey", max_length=512,
        description="an uploaded video (mp4, mov, webm) looped behind the animation, "
        "cover-fitted; backgroundBlur and backgroundDarken apply to it")
    text_color: str = Field("#ffffff", alias="textColor")
    layout: Layout = "standard"

    # before, after, in and out
    intro_key: str | None = Field(None, alias="introKey", max_length=512,
                                  description="an uploaded video (at most 60 s) played "
                                  "before the audiogram, with its own sound")
    outro_key: str | None = Field(None, alias="outroKey", max_length=512,
                                  description="an uploaded video (at most 60 s) played "
                                  "after the audiogram, with its own sound")
    intro_fit: Fit = Field("cover", alias="introFit",
                           description="intro and outro: cover the canvas (cropping) or fit "
                           "inside it (bordered with the background colour)")
    fade_in: float = Field(0.0, alias="fadeIn", ge=0, le=MAX_FADE_SECONDS,
                           description="seconds of fade from black (and silence) at the start")
    fade_out: float = Field(0.0, alias="fadeOut", ge=0, le=MAX_FADE_SECONDS,
                            description="seconds of fade to black (and silence) at the end")

    # captions and clip window
    captions_key: str | None = Field(None, alias="captionsKey", max_length=512)
    captions_highlight: str = Field(
        "#ffd23f", alias="captionsHighlight",
        description="word-timed captions: the colour of the word being said",
    )
    start: float = Field(0.0, ge=0, le=24 * 3600, description="seconds into the audio")
    end: float | None = Field(None, gt=0, le=24 * 3600, description="seconds; None = the end")

    # the service, not the picture
    split: bool = Field(True, description="render jobs: a long clip is cut into windows that "
                        "workers render side by side, then joined; false renders it in one "
                        "piece (previews and prepares never split)")
    cache: bool = Field(
        True,
        description="reuse the output of an earlier job of yours with the same audio bytes "
        "and options (the render cache); false renders afresh",
    )

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (H.264 with yuv420p needs even sides)")
        return value

    @field_validator("fps")
    @classmethod
    def _fps(cls, value: int) -> int:
        if value not in FRAME_RATES:
            raise ValueError(f"must be one of {', '.join(map(str, FRAME_RATES))}")
        return value

    @field_validator("color", "background", "text_color", "captions_highlight")
    @classmethod
    def _color(cls, value: str) -> str:
        return _check_color(value)

    @field_validator("color2", "background2")
    @classmethod
    def _optional_color(cls, value: str | None) -> str | None:
        return None if value is None else _check_color(value)

    @field_validator("background_key", "artwork_key", "captions_key", "background_video_key",
                     "intro_key", "outro_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and (
            not _KEY.match(value) or any(p in (".", "..") for p in value.split("/"))
        ):
            raise ValueError("must be a key returned by POST /v1/uploads")
        return value

    @field_validator("title", "subtitle")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = "".join(ch for ch in value if ch == "\n" or ch.isprintable()).strip()
        return value or None

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("preset"), str) \
                and data["preset"] in PRESETS:
            width, height = PRESETS[data["preset"]]
            if data.get("width", width) != width or data.get("height", height) != height:
                raise ValueError("give either preset or width/height, not both")
            data = {**data, "width": width, "height": height}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RenderSpec:
        if self.width * self.height > MAX_PIXELS:
            raise ValueError("canvas larger than 3840x2160 (or 2160x3840) pixels")
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if self.background_key and self.background_video_key:
            raise ValueError("give backgroundKey (an image) or backgroundVideoKey, not both")
        return self

    @property
    def rgb(self) -> RGB:
        return parse_color(self.color)

    @property
    def rgb2(self) -> RGB:
        return parse_color(self.color2 or self.color)

    @property
    def background_rgb(self) -> RGB:
        return parse_color(self.background)

    @property
    def background2_rgb(self) -> RGB | None:
        return parse_color(self.background2) if self.background2 else None

    @property
    def text_rgb(self) -> RGB:
        return parse_color(self.text_color)

    @property
    def captions_highlight_rgb(self) -> RGB:
        return parse_color(self.captions_highlight)

    @property
    def clip_seconds(self) -> float | None:
        """Length of the clip window, or None for 'to the end of the audio'."""
        return None if self.end is None else self.end - self.start

    @property
    def asset_keys(self) -> dict[str, str]:
        """Object keys the worker must fetch before rendering, by role."""
        keys = {
            "background": self.background_key,
            "artwork": self.artwork_key,
            "captions": self.captions_key,
            "backgroundVideo": self.background_video_key,
            "intro": self.intro_key,
            "outro": self.outro_key,
        }
        return {role: key for role, key in keys.items() if key}

    def for_preview(self) -> RenderSpec:
        """The same look, PREVIEW_WIDTH wide (height scaled, kept even), the first
        PREVIEW_SECONDS of the clip window, without the intro and outro (and the fades
        the body of the video does not have)."""
        update: dict[str, object] = {}
        if self.width > PREVIEW_WIDTH:
            height = max(MIN_SIDE, round(self.height * PREVIEW_WIDTH / self.width / 2) * 2)
            update.update(width=PREVIEW_WIDTH, height=height)
        clip = self.clip_seconds
        cut = clip is None or clip > PREVIEW_SECONDS
        if cut:
            update["end"] = self.start + PREVIEW_SECONDS
        # a preview shows the audiogram's look: no intro or outro before and after it,
        # and its body fades only where the video's body does (not where a bookend
        # takes the fade, nor at a cut the video does not have)
        update.update(intro_key=None, outro_key=None)
        if self.intro_key:
            update["fade_in"] = 0.0
        if self.outro_key or cut:
            update["fade_out"] = 0.0
        return self.model_copy(update=update)


@dataclass(frozen=True)
class Assets:
    """Local copies of the files a spec names, fetched by the caller."""

    background: Path | None = None
    artwork: Path | None = None
    captions: Path | None = None
    background_video: Path | None = None
    intro: Path | None = None
    outro: Path | None = None

    @classmethod
    def of(cls, paths: dict[str, Path]) -> Assets:
        """From local paths by `RenderSpec.asset_keys` role (``backgroundVideo`` ...)."""
        return cls(**{ASSET_FIELDS[role]: path for role, path in paths.items()})


#: The `Assets` field of each `RenderSpec.asset_keys` role.
ASSET_FIELDS = {"background": "background", "artwork": "artwork", "captions": "captions",
                "backgroundVideo": "background_video", "intro": "intro", "outro": "outro"}
