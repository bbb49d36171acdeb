import pytest
from .test_lifecycle_state_machine import Lifecycle, pytestmark, small_parts  # noqa
from .lifecycle import item_model

def test_replay(mode, small_parts, editor_client, monkeypatch, caplog):
    with item_model() as Item:
        monkeypatch.setattr(Lifecycle, "Item", Item)
        monkeypatch.setattr(Lifecycle, "client", editor_client)
        monkeypatch.setattr(Lifecycle, "mode", mode)
        s = Lifecycle()
        s.fresh_world()
        s.create_item(chosen={"picture", "photo"}, payload=(10, 12, "red", b"x"), kind="content", by_field_save=False, rollback=False)
        s.files_match_rows()
        for name in ("picture", "photo", "sketch"):
            s.save_file(pick=0, name=name, payload=(20, 30, "red", b"x"), kind="upload", rollback=False)
            try:
                s.files_match_rows()
            except AssertionError as e:
                print("FAIL", name, e)
        try:
            s.create_item(chosen={"picture", "photo"}, payload=(10, 12, "red", b"x"), kind="content", by_field_save=True, rollback=False)
        except Exception as e:
            print("FAIL create", repr(e))
