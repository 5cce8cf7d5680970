"""The ObjectStore contract, run against the local-disk store and the S3 store
(moto's S3 server over real HTTP): put, get, exists, size, delete, copy, and
presigned links that work over HTTP with no credentials.

Expiry: the local store's links are checked to stop working once expired. moto
does not enforce the expiry of S3 presigned URLs (an expired one still answers
200), so for S3 the test checks that the link carries the lifetime asked for
(X-Amz-Expires); S3 and R2 enforce it themselves.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from api import create_app
from devstack import free_port
from storage.errors import InvalidKey, ObjectNotFound
from storage.objects import LocalObjectStore, ObjectStore, object_store
from tests.helpers.stacks import ServedApp, settings_for


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, s3_env) -> Iterator[ObjectStore]:
    if request.param == "s3":
        yield object_store(settings_for(s3_env))
        return
    # Local links are served by the API's /files route: serve a real app.
    port = free_port()
    settings = settings_for({"STORAGE_DIR": str(tmp_path / "objects"),
                             "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
    served = ServedApp(create_app(settings), port)
    try:
        yield object_store(settings)
    finally:
        served.close()


def test_put_then_get_exists_size(store, tmp_path):
    store.put("renders/job1/output.mp4", io.BytesIO(b"video bytes"), "video/mp4")
    assert store.exists("renders/job1/output.mp4")
    assert store.size("renders/job1/output.mp4") == 11
    dest = tmp_path / "copy"
    store.get_file("renders/job1/output.mp4", dest)
    assert dest.read_bytes() == b"video bytes"


def test_put_replaces_and_put_file_streams_from_disk(store, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * (3 * 1024 * 1024 + 7))
    store.put("prepared/j/audio.wav", io.BytesIO(b"old"))
    store.put_file("prepared/j/audio.wav", source, "audio/wav")
    assert store.size("prepared/j/audio.wav") == source.stat().st_size


def test_missing_objects(store, tmp_path):
    assert not store.exists("renders/none/output.mp4")
    with pytest.raises(ObjectNotFound):
        store.get_file("renders/none/output.mp4", tmp_path / "x")
    with pytest.raises(ObjectNotFound):
        store.size("renders/none/output.mp4")
    store.delete("renders/none/output.mp4")  # not an error


def test_delete_removes(store):
    store.put("previews/j/preview.mp4", io.BytesIO(b"abc"))
    store.delete("previews/j/preview.mp4")
    assert not store.exists("previews/j/preview.mp4")


def test_copy_makes_an_independent_object_with_the_same_bytes(store, tmp_path):
    store.put("renders/a/output.mp4", io.BytesIO(b"rendered once"), "video/mp4")
    store.copy("renders/a/output.mp4", "renders/b/output.mp4")
    dest = tmp_path / "copy"
    store.get_file("renders/b/output.mp4", dest)
    assert dest.read_bytes() == b"rendered once"
    # deleting or replacing one leaves the other as it was
    store.delete("renders/a/output.mp4")
    store.get_file("renders/b/output.mp4", dest)
    assert dest.read_bytes() == b"rendered once"
    store.put("renders/c/output.mp4", io.BytesIO(b"another"))
    store.copy("renders/c/output.mp4", "renders/d/output.mp4")
    store.put("renders/c/output.mp4", io.BytesIO(b"replaced"))
    store.get_file("renders/d/output.mp4", dest)
    assert dest.read_bytes() == b"another"


def test_copy_replaces_the_destination_and_keeps_the_content_type(store):
    store.put("renders/e/output.mp4", io.BytesIO(b"new"), "video/mp4")
    store.put("renders/f/output.mp4", io.BytesIO(b"old and longer"))
    store.copy("renders/e/output.mp4", "renders/f/output.mp4")
    assert store.size("renders/f/output.mp4") == 3
    response = requests.get(store.presigned_url("renders/f/output.mp4", 60), timeout=10)
    assert response.content == b"new"
    assert response.headers["Content-Type"] == "video/mp4"


@pytest.mark.parametrize(("key", "content_type", "disposition"), [
    ("renders/k/output.mp4", "video/mp4", "inline"),
    ("renders/k/thumbnail.jpg", "image/jpeg", "inline"),
    ("prepared/k/audio.wav", "audio/wav", "inline"),
    ("prepared/k/peaks.json", "application/json", "attachment"),
    ("uploads/k/subs.vtt", "text/vtt", "attachment"),
])
def test_links_serve_media_in_place_and_anything_else_as_an_attachment(
        store, key, content_type, disposition):
    store.put(key, io.BytesIO(b"bytes"), content_type)
    response = requests.get(store.presigned_url(key, 60), timeout=10)
    assert response.headers["Content-Type"].split(";")[0] in (content_type, "audio/x-wav")
    assert response.headers["Content-Disposition"] == disposition


def test_copy_of_a_missing_object_is_not_found_and_writes_nothing(store):
    with pytest.raises(ObjectNotFound):
        store.copy("renders/none/output.mp4", "renders/g/output.mp4")
    assert not store.exists("renders/g/output.mp4")
    with pytest.raises(InvalidKey):
        store.copy("renders/none/output.mp4", "../escape")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/key", "a//b", "a/./b", "a/../b", "",
                                 "a b", "a\\b", "x" * 600])
def test_hostile_keys_are_refused(store, key):
    with pytest.raises(InvalidKey):
        store.put(key, io.BytesIO(b"x"))


def test_presigned_url_downloads_without_credentials(store):
    store.put("renders/j2/output.mp4", io.BytesIO(b"the video"), "video/mp4")
    url = store.presigned_url("renders/j2/output.mp4", 60)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"the video"


def test_presigned_url_states_its_lifetime(store):
    store.put("renders/j3/output.mp4", io.BytesIO(b"v"))
    query = parse_qs(urlsplit(store.presigned_url("renders/j3/output.mp4", 3600)).query)
    if "X-Amz-Expires" in query:
        assert query["X-Amz-Expires"] == ["3600"]
    else:
        assert abs(int(query["expires"][0]) - (time.time() + 3600)) < 5


def test_the_local_store_keeps_inside_its_directory_through_symlinks(tmp_path):
    root, outside = tmp_path / "objects", tmp_path / "outside"
    (root / "renders" / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "output.mp4").write_bytes(b"not the store's")
    (root / "renders" / "a" / "output.mp4").symlink_to(outside / "output.mp4")
    (root / "renders" / "b").symlink_to(outside)
    store = object_store(settings_for({"STORAGE_DIR": str(root)}))
    for key in ("renders/a/output.mp4", "renders/b/output.mp4"):
        assert not store.exists(key)
        with pytest.raises(ObjectNotFound):
            store.size(key)
        with pytest.raises(ObjectNotFound):
            store.get_file(key, tmp_path / "copy")
        with pytest.raises(ObjectNotFound):
            store.copy(key, "renders/c/output.mp4")
        with pytest.raises(InvalidKey):
            store.put(key, io.BytesIO(b"written through the link"))
        store.delete(key)  # removes a link itself, never what it points at
    assert (outside / "output.mp4").read_bytes() == b"not the store's"
    assert not (root / "renders" / "a" / "output.mp4").is_symlink()
    assert not store.exists("renders/c/output.mp4")


def test_local_links_expire_and_refuse_tampering(tmp_path):
    port = free_port()
    settings = settings_for({"STORAGE_DIR": str(tmp_path / "objects"),
                             "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
    served = ServedApp(create_app(settings), port)
    try:
        store = object_store(settings)
        assert isinstance(store, LocalObjectStore)
        store.put("renders/j/output.mp4", io.BytesIO(b"v"))
        # expiry is in whole seconds: 3 s is at least 2 s from now
        short = store.presigned_url("renders/j/output.mp4", 3)
        assert requests.get(short, timeout=5).status_code == 200
        time.sleep(4.1)
        expired = requests.get(short, timeout=5)
        assert expired.status_code == 404
        assert expired.json()["error"]["code"] == "not_found"
        good = store.presigned_url("renders/j/output.mp4", 60)
        assert requests.get(good.replace("signature=", "signature=0"), timeout=5).status_code == 404
        other = good.replace("renders/j/output.mp4", "renders/k/output.mp4")
        assert requests.get(other, timeout=5).status_code == 404
    finally:
        served.close()
