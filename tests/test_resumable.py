import fsspec
import numpy as np
import pytest
import zarr

from s2scale import resumable
from s2scale.errors import ConfigError, GridMismatchError

KIND = resumable.StoreKind(name="test store", fix="pass overwrite=True")


def _create(loc):
    zarr.open_group(loc.target, mode="w", zarr_format=3)
    resumable.create_done_grid(loc.target, "done", (2, 3))


def test_create_resume_refuse_and_overwrite(tmp_path):
    path = tmp_path / "s.zarr"
    manifest = {"format": "t/1", "chunks": (4, 4), "fp": {"a": 1}}
    loc, created = resumable.open_or_create(path, KIND, manifest, create=_create)
    assert created and loc.target == str(path)
    assert resumable.read_manifest(loc.target, KIND) == {
        "chunks": [4, 4], "fp": {"a": 1}, "format": "t/1"}  # fmt: skip
    resumable.mark_done(loc.target, "done", (1, 2))
    _, created = resumable.open_or_create(path, KIND, manifest, create=_create)
    assert not created and resumable.read_done(loc.target, "done").sum() == 1
    with pytest.raises(GridMismatchError, match=r"fp\.a: 1 -> 2.*overwrite=True"):
        resumable.open_or_create(path, KIND, {**manifest, "fp": {"a": 2}}, create=_create)
    with pytest.raises(GridMismatchError, match="not an s2scale test store"):
        resumable.open_or_create(path, KIND, {**manifest, "format": "u/1"}, create=_create)
    _, created = resumable.open_or_create(
        path, KIND, {**manifest, "fp": {"a": 2}}, create=_create, overwrite=True
    )
    assert created and not resumable.read_done(str(path), "done").any()


def test_refuses_other_data_and_unserialisable_manifests(tmp_path):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "a.txt").write_text("x")
    with pytest.raises(GridMismatchError, match="not a Zarr store; pass overwrite=True"):
        resumable.open_or_create(tmp_path / "foreign", KIND, {}, create=_create)
    (tmp_path / "empty").mkdir()  # an empty folder is simply used
    assert resumable.open_or_create(tmp_path / "empty", KIND, {}, create=_create)[1]
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=3)
    with pytest.raises(GridMismatchError, match="creation was interrupted"):
        resumable.open_or_create(tmp_path / "plain.zarr", KIND, {}, create=_create)
    with pytest.raises(ConfigError, match="JSON-serialisable"):
        resumable.open_or_create(tmp_path / "x.zarr", KIND, {"f": object()}, create=_create)
    assert not (tmp_path / "x.zarr").exists()


def test_manifest_in_a_root_attribute_and_fsspec_urls():
    kind = resumable.StoreKind(name="pair store", fix="pass --overwrite", group="", key="meta")
    url = "memory://s2scale-resumable/s.zarr"
    try:
        loc, created = resumable.open_or_create(url, kind, {"v": 1}, create=_create)
        assert created and loc.target == url and loc.shown == url
        assert dict(zarr.open_group(url, mode="r").attrs) == {"meta": {"v": 1}}
        with pytest.raises(GridMismatchError, match=r"v: 1 -> 2"):
            resumable.open_or_create(url, kind, {"v": 2}, create=_create)
    finally:
        fsspec.filesystem("memory").rm("/s2scale-resumable", recursive=True)


def test_done_records_list_only_finished_groups(tmp_path):
    root = zarr.open_group(str(tmp_path / "r.zarr"), mode="w", zarr_format=3)
    parts = root.create_group("parts")
    parts.create_group("b")  # being written: no record yet
    rec = resumable.mark_record_done(parts.create_group("a"), {"n": np.int64(3), "ids": ("x",)})
    assert rec == {"n": 3, "ids": ["x"], "done": True}
    assert resumable.done_records(parts) == {"a": rec}


def test_redacted_locations():
    loc = resumable.resolve_store("memory://KEY:SECRET@bucket/m.zarr?token=t")
    assert "SECRET" not in loc.shown and "SECRET" not in repr(loc.shown)
    assert resumable.resolve_store("file:///data/m.zarr").target == "/data/m.zarr"
