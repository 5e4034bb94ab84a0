"""A local lake's write and a delete in the same folder at once, with real threads.

Deleting a folder's last object removes the emptied folder (as its prefix goes on S3). A write in the
same folder (another of the archive's four copying threads, or another process) then found its folder
gone between its mkdir and its write, and failed with FileNotFoundError: the write makes the folder
again now."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from metrify_assets.resources.lake import Lake

FOLDER = "curated/meter_readings/dt=2026-01-01"


def test_a_write_whose_folder_a_delete_removes_after_its_mkdir_makes_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete runs in another thread at the worst moment: right after the writer's mkdir."""
    lake = Lake(str(tmp_path / "lake"))
    lake.put(f"{FOLDER}/other.parquet", b"the folder's last object")
    folder = lake.root / FOLDER
    real_mkdir = Path.mkdir
    deleted = threading.Event()

    def mkdir_then_delete(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        if self == folder and not deleted.is_set():
            deleter = threading.Thread(target=lake.delete, args=(f"{FOLDER}/other.parquet",))
            deleter.start()
            deleter.join()
            deleted.set()
            assert not folder.exists()  # the delete took the emptied folder, after our mkdir

    monkeypatch.setattr(Path, "mkdir", mkdir_then_delete)
    lake.put(f"{FOLDER}/day.parquet", b"the day's copy")
    assert deleted.is_set()
    assert lake.get(f"{FOLDER}/day.parquet") == b"the day's copy"
    assert lake.list("curated/") == [f"{FOLDER}/day.parquet"]
    assert sorted(p.name for p in folder.iterdir()) == ["day.parquet"]  # no temporary file left


def test_writes_and_deletes_in_the_same_folders_from_four_threads(tmp_path: Path) -> None:
    """Four threads write and delete objects in two day folders of one dataset (so each empties and
    removes its day folder, and at times the dataset's): every write lands. Failed within 300 rounds
    every time before (FileNotFoundError from the write or from pathlib's mkdir)."""
    lake = Lake(str(tmp_path / "lake"))
    errors: list[BaseException] = []
    written = [0] * 4

    def worker(i: int) -> None:
        key = f"curated/meter_readings/dt=2026-01-0{1 + i % 2}/{i}.parquet"
        try:
            for n in range(300):
                body = f"{i}:{n}".encode()
                lake.put(key, body, storage_class="STANDARD_IA" if n % 3 == 0 else "STANDARD")
                assert lake.get(key) == body
                written[i] += 1
                lake.delete(key)
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and written == [300] * 4
    assert lake.list("curated/") == []
    assert not (lake.root / "curated").exists()  # the emptied folders went, as on S3
