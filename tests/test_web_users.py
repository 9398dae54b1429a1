"""The web app's accounts (waitroom.web.users) and their command line: the office always keeps an admin."""

from __future__ import annotations

from pathlib import Path

import pytest

from waitroom.web.users import UserError, UserStore

PASSWORD = "a-long-password"


def test_the_last_admin_can_be_neither_demoted_nor_removed(tmp_path: Path):
    store = UserStore(tmp_path / "u.db")
    store.add("chef", PASSWORD, "admin")
    store.add("anna", PASSWORD, "staff")
    with pytest.raises(UserError, match="'chef' is the last admin; create another admin first"):
        store.add("chef", PASSWORD, "staff", replace=True)
    with pytest.raises(UserError, match="last admin"):
        store.remove("chef")
    assert store.get("chef").is_admin
    store.add("chef", "another-long-password", "admin", replace=True)  # a new password stays possible
    store.add("vize", PASSWORD, "admin")  # with a second admin, either may step down
    store.add("chef", PASSWORD, "booking", replace=True)
    assert not store.get("chef").is_admin
    with pytest.raises(UserError, match="'vize' is the last admin"):
        store.remove("vize")
    assert store.remove("anna") and store.get("anna") is None  # staff accounts go as before


def test_the_command_line_refuses_to_demote_the_last_admin(tmp_path, monkeypatch, capsys):
    from waitroom.cli import main

    monkeypatch.setenv("WAITROOM_USER_PASSWORD", "admin-password-1")
    base = ["web", "add-user", "--data-dir", str(tmp_path), "--username", "chefin"]
    assert main(["web", "create-admin", "--data-dir", str(tmp_path), "--username", "chefin"]) == 0
    capsys.readouterr()
    assert main([*base, "--role", "staff", "--replace"]) == 1
    assert "'chefin' is the last admin" in capsys.readouterr().err
    assert UserStore(tmp_path / "web-users.db").get("chefin").is_admin
