"""The human labels file of few-shot runs: CSV and UCF-Crime annotation rows, every refusal."""
import numpy as np
import pytest

from lanp.data.human_labels import (HumanLabels, check_disjoint, labels_from_mapping, read_labels_file,
                                    write_labels_csv)
from lanp.kernels import InputError

IDS = ["a", "b", "c", "d"]
LENGTHS = [10, 12, 8, 6]


def write(tmp_path, text, name="few.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_rows_header_comments_and_several_spans(tmp_path):
    p = write(tmp_path, "video_id,kind,start,end\n# a comment\na,normal_video\n\nb,abnormal_span,7,9\n"
                        "b,abnormal_span,2,5\nb,abnormal_span,2,5\nc,abnormal_video\n")
    h = read_labels_file(p, IDS, LENGTHS)
    assert h.kinds == {"a": "normal_video", "b": "abnormal_video", "c": "abnormal_video"}
    assert h.spans == {"b": ((2, 5), (7, 9))}          # sorted, the repeated span once
    assert len(h) == 3 and h.source == str(p)
    label, video = h.snippet_arrays(IDS, np.cumsum([0] + LENGTHS))
    assert video.tolist() == [0, 1, 1, -1] and label.dtype == np.int8
    assert label[:10].tolist() == [0] * 10
    assert label[10:22].tolist() == [-1, -1, 1, 1, 1, -1, -1, 1, 1, -1, -1, -1]
    assert (label[22:] == -1).all()


def test_header_is_optional_and_abnormal_video_plus_spans_is_one_abnormal_video(tmp_path):
    p = write(tmp_path, "b,abnormal_video\nb,abnormal_span,0,12\n")
    h = read_labels_file(p, IDS, LENGTHS)
    assert h.kinds == {"b": "abnormal_video"} and h.spans == {"b": ((0, 12),)}


def test_frame_units_become_the_snippets_they_touch(tmp_path):
    p = write(tmp_path, "b,abnormal_span,17,33\nb,abnormal_span,0,16\nb,abnormal_span,180,200\n")
    h = read_labels_file(p, IDS, LENGTHS, span_units="frame")
    # [17, 33) touches snippets 1 and 2 (frames 16..47); [0, 16) is snippet 0; [180, 200) touches 11
    # and the tail of the last snippet (frames 192..207), clipped to L = 12
    assert h.spans == {"b": ((0, 1), (1, 3), (11, 12))}
    p = write(tmp_path, "b,abnormal_span,17,33\n")
    assert read_labels_file(p, IDS, LENGTHS, span_units="frame", frames_per_snippet=8).spans == {"b": ((2, 5),)}


def test_frames_past_the_video_and_per_snippet_frames(tmp_path):
    p = write(tmp_path, "b,abnormal_span,180,200\n")
    with pytest.raises(InputError, match=r"line 1 \(video 'b'\): span \[180, 200\) lies outside the video's 12 "
                                         r"snippets = 96 frames"):
        read_labels_file(p, IDS, LENGTHS, span_units="frame", frames_per_snippet=8)
    p = write(tmp_path, "b,abnormal_span,1,209\n")   # more than one snippet past 16 x 12 = 192 frames
    with pytest.raises(InputError, match=r"span \[1, 209\) lies outside"):
        read_labels_file(p, IDS, LENGTHS, span_units="frame")


def test_names_match_by_canonical_name(tmp_path):
    ids = ["Abuse028_x264", "Normal_Videos_003_x264"]
    p = write(tmp_path, "Abuse028_x264.mp4,abnormal_span,1,3\nNormal_Videos_003_x264__5_gt.npy,normal_video\n")
    h = read_labels_file(p, ids, [30, 20])
    assert h.kinds == {"Abuse028_x264": "abnormal_video", "Normal_Videos_003_x264": "normal_video"}


def test_ucf_crime_annotation_subset(tmp_path):
    ids = ["Abuse028_x264", "Normal_Videos_003_x264", "Arson011_x264", "Other_x264"]
    p = write(tmp_path, "Abuse028_x264.mp4  Abuse  165  240  -1  -1\n"
                        "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1\n"
                        "Arson011_x264.mp4  Arson  0  15  300  321\n", "Temporal_Anomaly_Annotation.txt")
    h = read_labels_file(p, ids, [30, 20, 20, 5], span_units="snippet")      # frames whatever the units
    assert h.kinds == {"Abuse028_x264": "abnormal_video", "Normal_Videos_003_x264": "normal_video",
                       "Arson011_x264": "abnormal_video"}
    # [165, 240): snippets 10..14; [0, 15): 0; [300, 321): 18, 19 and the tail of the 20 snippets
    assert h.spans == {"Abuse028_x264": ((10, 15),), "Arson011_x264": ((0, 1), (18, 20))}


def test_ucf_annotation_refusals(tmp_path):
    ids, lengths = ["Abuse028_x264"], [30]
    p = write(tmp_path, "Missing_x264.mp4  Abuse  1  2  -1  -1\n", "ann.txt")
    with pytest.raises(InputError, match=r"ann.txt' line 1: video 'Missing_x264.mp4' is not in the features"):
        read_labels_file(p, ids, lengths)
    p = write(tmp_path, "Abuse028_x264.mp4  Abuse  900  990  -1  -1\n", "ann.txt")
    with pytest.raises(InputError, match=r"ann.txt' line 1 \(video 'Abuse028_x264'\).*\[900, 990\)"):
        read_labels_file(p, ids, lengths)
    p = write(tmp_path, "Abuse028_x264.mp4  Abuse  50  20  -1  -1\n", "ann.txt")
    with pytest.raises(InputError, match=r"line 1 \(video 'Abuse028_x264'\): interval \[50, 20\) is invalid"):
        read_labels_file(p, ids, lengths)


@pytest.mark.parametrize("text, message", [
    ("zz,normal_video\n", r"line 1: video 'zz' is not in the features \(4 videos"),
    ("a,normal_video\nb,abnormal_span,3,13\n", r"line 2 \(video 'b'\): span \[3, 13\) lies outside the video's 12 snippets"),
    ("b,abnormal_span,5,5\n", r"line 1 \(video 'b'\): span \[5, 5\) is invalid: it must satisfy 0 <= start < end"),
    ("b,abnormal_span,6,2\n", r"line 1 \(video 'b'\): span \[6, 2\) is invalid"),
    ("b,abnormal_span,-1,2\n", r"line 1 \(video 'b'\): span \[-1, 2\) is invalid"),
    ("a,normal_video\nb,abnormal_video\na,abnormal_span,1,2\n",
     r"line 3 \(video 'a'\): kind 'abnormal_span' conflicts with line 1, which labels video 'a' normal_video"),
    ("c,abnormal_video\nc,normal_video\n", r"line 2 \(video 'c'\): kind 'normal_video' conflicts with line 1"),
    ("a,normal\n", r"line 1 \(video 'a'\): kind 'normal' is invalid: choose one of normal_video, abnormal_video, abnormal_span"),
    ("a\n", r"line 1: expected 'video_id,kind' or 'video_id,abnormal_span,start,end', got 'a'"),
    ("a,normal_video,1\n", r"line 1: expected 'video_id,kind'"),
    ("b,abnormal_span\n", r"line 1 \(video 'b'\): kind abnormal_span needs start,end"),
    ("a,normal_video,1,2\n", r"line 1 \(video 'a'\): kind normal_video takes no start,end"),
    ("b,abnormal_span,x,2\n", r"line 1 \(video 'b'\): start 'x' is not an integer"),
    (",normal_video\n", r"line 1: expected"),
])
def test_csv_refusals_name_file_line_video_and_value(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(InputError, match=r"labels file '.*few.csv' " + message):
        read_labels_file(p, IDS, LENGTHS)


def test_refusals_of_the_file_and_the_units(tmp_path):
    with pytest.raises(InputError, match="labels file '.*nothere.csv' does not exist"):
        read_labels_file(tmp_path / "nothere.csv", IDS, LENGTHS)
    p = tmp_path / "bin.csv"
    p.write_bytes(b"a,normal_video\n\x00\x01")
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        read_labels_file(p, IDS, LENGTHS)
    with pytest.raises(InputError, match="span_units='frames' is invalid: choose snippet or frame"):
        read_labels_file(write(tmp_path, "a,normal_video\n"), IDS, LENGTHS, span_units="frames")


def test_an_empty_file_is_no_labels(tmp_path):
    h = read_labels_file(write(tmp_path, "video_id,kind,start,end\n"), IDS, LENGTHS)
    assert len(h) == 0 and h.kinds == {} and h.spans == {}
    assert len(HumanLabels.empty()) == 0


def test_check_disjoint_names_the_id_and_both_files(tmp_path):
    h = read_labels_file(write(tmp_path, "a,normal_video\nb,abnormal_video\n"), IDS, LENGTHS)
    check_disjoint(h, ["c", "d"], "test.h5")
    with pytest.raises(InputError, match=r"video 'b' is labelled in '.*few.csv' and is also a test video "
                                         r"\('b.mp4' in 'test.h5'\)"):
        check_disjoint(h, ["x", "b.mp4"], "test.h5")


def test_write_and_read_back(tmp_path, rng):
    spans = {}
    kinds = {}
    for vid, L in zip(IDS, LENGTHS):
        kind = rng.choice(["normal_video", "abnormal_video", None])
        if kind is None:
            continue
        kinds[vid] = str(kind)
        if kind == "abnormal_video" and rng.random() < 0.7:
            s = int(rng.integers(0, L - 1))
            spans[vid] = [(s, int(rng.integers(s + 1, L + 1)))]
    h = labels_from_mapping(kinds, spans, "draw")
    out = tmp_path / "draw.csv"
    write_labels_csv(out, h)
    back = read_labels_file(out, IDS, LENGTHS)
    assert back.kinds == h.kinds and back.spans == h.spans


def test_labels_built_in_code_are_checked():
    HumanLabels({"a": "normal_video"}, {}, "draw").check(IDS, LENGTHS)
    with pytest.raises(InputError, match="draw: video 'q' is not in the features"):
        HumanLabels({"q": "normal_video"}, {}, "draw").check(IDS, LENGTHS)
    with pytest.raises(InputError, match=r"draw: video 'b': span \[0, 13\) lies outside"):
        HumanLabels({"b": "abnormal_video"}, {"b": ((0, 13),)}, "draw").check(IDS, LENGTHS)
    with pytest.raises(InputError, match="draw: video 'a' has spans but is not labelled abnormal_video"):
        HumanLabels({"a": "normal_video"}, {"a": ((0, 1),)}, "draw").check(IDS, LENGTHS)
    with pytest.raises(InputError, match="draw: video 'a' has kind 'abnormal_span'"):
        HumanLabels({"a": "abnormal_span"}, {}, "draw").check(IDS, LENGTHS)
