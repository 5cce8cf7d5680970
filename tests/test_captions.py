"""Caption files as people upload them: SRT and WebVTT, tidy or not, read into cues."""

from __future__ import annotations

import pytest

from render.captions import (
    MAX_CAPTION_BYTES,
    MAX_CUES,
    Cue,
    InvalidCaptions,
    parse_captions,
    shift_cues,
)
from render.errors import RenderError

SRT = """\
1
00:00:01,000 --> 00:00:04,000
Hello there.
Second line.

2
00:00:05,500 --> 00:00:07,250
<i>Goodbye</i>, {\\an8}<b>friend</b>.
"""

VTT = """\
WEBVTT - An interview
Kind: captions
Language: en

NOTE This file was made by hand
and this note spans two lines.

STYLE
::cue { color: yellow }

REGION
id:speaker
width:40%

intro
00:01.000 --> 00:04.000 align:start position:10% line:0
<v Roger Bingham>We are in New York City</v>

00:00:05.500 --> 00:00:07.250
It&apos;s <c.loud>warm</c> &amp; <00:00:06.000>sunny
"""


def test_srt_parses_into_cues_with_lines_kept_and_tags_stripped() -> None:
    assert parse_captions(SRT) == [
        Cue(1.0, 4.0, "Hello there.\nSecond line."),
        Cue(5.5, 7.25, "Goodbye, friend."),
    ]


def test_srt_with_crlf_and_bom_parses_like_plain_srt() -> None:
    data = ("\ufeff" + SRT.replace("\n", "\r\n")).encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    assert parse_captions(data) == parse_captions(SRT)


def test_old_srt_in_cp1252_is_decoded() -> None:
    data = "1\n00:00:01,000 --> 00:00:02,000\nCafé “au lait”\n".encode("cp1252")
    assert parse_captions(data) == [Cue(1.0, 2.0, "Café “au lait”")]


def test_utf16_srt_with_bom_is_decoded() -> None:
    data = "1\r\n00:00:01,000 --> 00:00:02,000\r\nÜber\r\n".encode("utf-16")
    assert parse_captions(data) == [Cue(1.0, 2.0, "Über")]


def test_srt_without_cue_numbers_and_with_extra_blank_lines_parses() -> None:
    data = "\n\n00:00:01,000 --> 00:00:02,000\nOne\n\n\n\n00:00:03,000 --> 00:00:04,000\nTwo\n\n"
    assert parse_captions(data) == [Cue(1.0, 2.0, "One"), Cue(3.0, 4.0, "Two")]


def test_srt_with_a_dot_before_milliseconds_and_coordinates_parses() -> None:
    data = "1\n00:00:01.5 --> 00:00:02.000 X1:100 X2:200 Y1:10 Y2:20\nHi\n"
    assert parse_captions(data) == [Cue(1.5, 2.0, "Hi")]


def test_srt_cues_without_blank_line_between_them_are_split() -> None:
    data = "1\n00:00:01,000 --> 00:00:02,000\nOne\n2\n00:00:03,000 --> 00:00:04,000\nTwo\n"
    assert parse_captions(data) == [Cue(1.0, 2.0, "One"), Cue(3.0, 4.0, "Two")]


def test_vtt_skips_header_notes_style_and_region_and_reads_settings_identifiers_tags() -> None:
    cues = parse_captions(VTT)
    assert [(cue.start, cue.end, cue.text) for cue in cues] == [
        (1.0, 4.0, "We are in New York City"),
        (5.5, 7.25, "It's warm & sunny"),
    ]
    # its inline timestamp makes the second cue word-timed (tests/test_word_captions.py)
    assert cues[0].words == () and [word.start for word in cues[1].words][-1] == 6.0


def test_vtt_with_bom_and_crlf_bytes_parses() -> None:
    data = ("\ufeff" + VTT).replace("\n", "\r\n").encode("utf-8")
    assert parse_captions(data) == parse_captions(VTT)


def test_vtt_hours_are_optional_and_long_files_go_past_an_hour() -> None:
    data = "WEBVTT\n\n59:59.000 --> 01:00:01.500\nAcross the hour\n"
    assert parse_captions(data) == [Cue(3599.0, 3601.5, "Across the hour")]


def test_cues_come_back_sorted_by_start() -> None:
    data = "WEBVTT\n\n00:05.000 --> 00:06.000\nLater\n\n00:01.000 --> 00:02.000\nEarlier\n"
    assert [cue.text for cue in parse_captions(data)] == ["Earlier", "Later"]


def test_cues_with_no_text_or_no_duration_are_dropped() -> None:
    data = (
        "1\n00:00:01,000 --> 00:00:02,000\n<i></i>\n\n"
        "2\n00:00:03,000 --> 00:00:03,000\nFlash\n\n"
        "3\n00:00:04,000 --> 00:00:05,000\nKept\n"
    )
    assert parse_captions(data) == [Cue(4.0, 5.0, "Kept")]


def test_bad_time_range_names_the_line_and_shows_it() -> None:
    data = "1\n00:00:00,000 --> 00:00:01,000\nFine\n\n2\n00:00:01 -> 4\nBroken\n"
    with pytest.raises(InvalidCaptions) as caught:
        parse_captions(data)
    assert isinstance(caught.value, RenderError)
    assert caught.value.code == "invalid_captions"
    assert str(caught.value) == (
        "captions line 6: expected a time range like 00:00:01,000 --> 00:00:04,000, "
        "got '00:00:01 -> 4'"
    )


def test_bad_vtt_timestamp_uses_the_vtt_example_and_the_given_name() -> None:
    data = "WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nBroken\n"
    with pytest.raises(
        InvalidCaptions, match=r"^talk\.vtt line 3: .*00:00:01\.000 --> 00:00:04\.000"
    ):
        parse_captions(data, name="talk.vtt")


def test_a_cue_missing_its_time_range_names_the_line_where_it_should_be() -> None:
    with pytest.raises(InvalidCaptions, match=r"^captions line 2: .* got 'Just text'$"):
        parse_captions("1\nJust text\n")


def test_minutes_or_seconds_past_59_are_refused() -> None:
    with pytest.raises(InvalidCaptions, match=r"line 2: '00:00:75,000' is not a valid time"):
        parse_captions("1\n00:00:75,000 --> 00:01:20,000\nToo many seconds\n")


def test_cue_ending_before_it_starts_is_refused_with_both_times() -> None:
    data = "WEBVTT\n\nNOTE x\n\n00:00:05.000 --> 00:00:03.000\nBackwards\n"
    with pytest.raises(InvalidCaptions) as caught:
        parse_captions(data)
    assert caught.value.code == "invalid_captions"
    assert str(caught.value) == (
        "captions line 5: the cue ends (00:00:03.000) before it starts (00:00:05.000)"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        bytes(range(256)) * 4,
        b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00",
    ],
    ids=["png", "random bytes", "mp3"],
)
def test_binary_file_is_refused_at_line_1(data: bytes) -> None:
    with pytest.raises(
        InvalidCaptions, match=r"^captions line 1: this is not a text file"
    ) as caught:
        parse_captions(data)
    assert caught.value.code == "invalid_captions"


@pytest.mark.parametrize("data", [b"", "   \n\r\n  ", "WEBVTT\n\n", "WEBVTT\n\nNOTE only\n"])
def test_file_without_cues_is_refused(data: bytes | str) -> None:
    with pytest.raises(InvalidCaptions) as caught:
        parse_captions(data)
    assert str(caught.value) == "captions: no cues found; upload an SRT or WebVTT file"


def test_file_over_2_mb_is_refused() -> None:
    data = b"1\n00:00:01,000 --> 00:00:02,000\n" + b"a" * MAX_CAPTION_BYTES
    with pytest.raises(
        InvalidCaptions, match=r"^captions: the file is 2\.0 MB; .* limited to 2 MB"
    ):
        parse_captions(data)


def test_more_than_max_cues_is_refused() -> None:
    cue = "00:00:01.000 --> 00:00:02.000\nx\n\n"
    assert len(parse_captions("WEBVTT\n\n" + cue * MAX_CUES)) == MAX_CUES
    with pytest.raises(InvalidCaptions, match=r"more than 20,000 cues"):
        parse_captions("WEBVTT\n\n" + cue * (MAX_CUES + 1))


def test_shift_cues_moves_clips_and_drops_for_a_clip_window() -> None:
    cues = [
        Cue(0.0, 1.0, "before"),
        Cue(1.5, 3.0, "straddles start"),
        Cue(4.0, 5.0, "inside"),
        Cue(5.5, 8.0, "straddles end"),
        Cue(9.0, 10.0, "after"),
    ]
    assert shift_cues(cues, 2.0, 7.0) == [
        Cue(0.0, 1.0, "straddles start"),
        Cue(2.0, 3.0, "inside"),
        Cue(3.5, 5.0, "straddles end"),
    ]


def test_shift_cues_without_end_keeps_everything_after_offset() -> None:
    cues = [Cue(0.0, 1.0, "gone"), Cue(1.0, 2.0, "a"), Cue(30.0, 31.0, "b")]
    assert shift_cues(cues, 1.0, None) == [Cue(0.0, 1.0, "a"), Cue(29.0, 30.0, "b")]


def test_shift_cues_drops_cues_touching_the_window_only_at_an_edge() -> None:
    cues = [Cue(0.0, 2.0, "ends at offset"), Cue(7.0, 8.0, "starts at end")]
    assert shift_cues(cues, 2.0, 7.0) == []
