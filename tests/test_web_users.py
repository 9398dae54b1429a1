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


@pytest.mark.parametrize("step", ["demote", "remove"])
def test_two_workers_stepping_down_two_admins_at_once_leave_one(tmp_path: Path, step: str):
    """Two web workers (two connections to the users database), each asked by an admin to demote or remove
    the other admin at the same moment. The check "another admin remains" counted outside the change: both
    counted two, both went ahead, and the office had no admin left (nobody could reach the admin pages). Now
    the check and the change are one write transaction: the second worker waits, counts one, and refuses."""
    import threading

    first, second = UserStore(tmp_path / "u.db"), UserStore(tmp_path / "u.db")
    first.add("chef", PASSWORD, "admin")
    first.add("vize", PASSWORD, "admin")
    outcome: list[BaseException | None] = []

    def other_worker() -> None:
        try:
            if step == "demote":
                second.set_role("vize", "staff")
            else:
                second.remove("vize")
            outcome.append(None)
        except BaseException as exc:  # the test reads it
            outcome.append(exc)

    count = first.count_admins

    def counted_then_the_other_worker() -> int:
        n = count()  # the first worker has counted...
        worker = threading.Thread(target=other_worker)
        worker.start()  # ...when the second one goes ahead
        worker.join(timeout=1.0)  # it finishes here without the transaction, waits for it with one
        first._racing = worker
        return n

    first.count_admins = counted_then_the_other_worker  # type: ignore[method-assign]
    if step == "demote":
        first.set_role("chef", "staff")
    else:
        first.remove("chef")
    first._racing.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], UserError), outcome
    assert second.count_admins() == 1
    first.close()
    second.close()


def test_the_command_line_refuses_to_demote_the_last_admin(tmp_path, monkeypatch, capsys):
    from waitroom.cli import main

    monkeypatch.setenv("WAITROOM_USER_PASSWORD", "admin-password-1")
    base = ["web", "add-user", "--data-dir", str(tmp_path), "--username", "chefin"]
    assert main(["web", "create-admin", "--data-dir", str(tmp_path), "--username", "chefin"]) == 0
    capsys.readouterr()
    assert main([*base, "--role", "staff", "--replace"]) == 1
    assert "'chefin' is the last admin" in capsys.readouterr().err
    assert UserStore(tmp_path / "web-users.db").get("chefin").is_admin
