import json

import pytest

from unified_reward.errors import UserError
from unified_reward.runs import FAILED_MARKER, STATUS_FILE, completed_metrics, run_status


def _status(folder):
    return json.loads((folder / STATUS_FILE).read_text())


def test_a_completed_run_says_so(tmp_path):
    with run_status(tmp_path):
        assert _status(tmp_path)["status"] == "running"
    assert _status(tmp_path)["status"] == "completed" and not (tmp_path / FAILED_MARKER).exists()


def test_a_user_error_becomes_one_message_exit_1_and_a_failed_marker(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exited, run_status(tmp_path):
        raise UserError("model.pretrained=/x: no such local folder")
    assert exited.value.code == 1
    assert "no such local folder" in caplog.text
    assert _status(tmp_path)["status"] == "failed"
    assert (tmp_path / FAILED_MARKER).read_text().startswith("UserError: model.pretrained=/x")


def test_hydra_full_error_shows_the_user_error_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(UserError), run_status(tmp_path):
        raise UserError("bad")


def test_a_bug_propagates_with_its_traceback_and_still_marks_the_run(tmp_path):
    with pytest.raises(ZeroDivisionError), run_status(tmp_path):
        1 / 0  # noqa: B018
    assert _status(tmp_path)["error"].startswith("ZeroDivisionError")
    with run_status(tmp_path):  # a resumed run in the same folder starts clean
        pass
    assert not (tmp_path / FAILED_MARKER).exists()


def test_only_a_completed_run_with_its_metrics_counts_as_done(tmp_path):
    assert completed_metrics(tmp_path) is None  # never started
    with run_status(tmp_path):
        pass
    assert completed_metrics(tmp_path) is None  # completed, but no metrics.json
    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": {"test/acc/mean": 0.75}}))
    assert completed_metrics(tmp_path) == {"test/acc/mean": 0.75}
    (tmp_path / STATUS_FILE).write_text(json.dumps({"status": "running"}))  # killed part way
    assert completed_metrics(tmp_path) is None
    (tmp_path / STATUS_FILE).write_text("{not json")
    assert completed_metrics(tmp_path) is None
