"""What to render: one validated `RenderSpec`.

The API's job ``options`` are parsed straight into this model, so a bad value is
refused at submit time with the field named, and the worker renders exactly what
was accepted. Defaults are what most podcast clips want: 1280x720 at 30 fps.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Frame rates the encoder settings are tuned for (film, PAL, NTSC-ish, and double).
FRAME_RATES = (24, 25, 30, 50, 60)
#: Largest canvas: 4K UHD.
MAX_WIDTH, MAX_HEIGHT = 3840, 2160
#: Smallest canvas side; below this x264 and players misbehave.
MIN_SIDE = 16
#: Preview clips: this wide, this long.
PREVIEW_WIDTH = 480
PREVIEW_SECONDS = 15.0

Style = Literal["wave"]

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def parse_color(value: str) -> tuple[int, int, int]:
    """``#rgb`` or ``#rrggbb`` to an (r, g, b) tuple."""
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


class RenderSpec(BaseModel):
    """The look and size of a video. Unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(1280, ge=MIN_SIDE, le=MAX_WIDTH, description="even, pixels")
    height: int = Field(720, ge=MIN_SIDE, le=MAX_HEIGHT, description="even, pixels")
    fps: int = Field(30, description="one of 24, 25, 30, 50, 60")
    style: Style = "wave"
    color: str = Field("#f5f5f5", description="waveform colour, #rgb or #rrggbb")
    background: str = Field("#14161f", description="background colour, #rgb or #rrggbb")

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

    @field_validator("color", "background")
    @classmethod
    def _color(cls, value: str) -> str:
        if not _HEX.match(value):
            raise ValueError("must be a hex colour like #1e90ff or #fff")
        return value.lower()

    @model_validator(mode="after")
    def _pixels(self) -> RenderSpec:
        if self.width * self.height > MAX_WIDTH * MAX_HEIGHT:
            raise ValueError(f"canvas larger than {MAX_WIDTH}x{MAX_HEIGHT} pixels")
        return self

    @property
    def rgb(self) -> tuple[int, int, int]:
        return parse_color(self.color)

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        return parse_color(self.background)

    def for_preview(self) -> RenderSpec:
        """The same look, PREVIEW_WIDTH wide, height scaled and kept even."""
        if self.width <= PREVIEW_WIDTH:
            return self
        height = max(MIN_SIDE, round(self.height * PREVIEW_WIDTH / self.width / 2) * 2)
        return self.model_copy(update={"width": PREVIEW_WIDTH, "height": height})
