"""The shared task policies: every task tagged, reads cached and retried on transient errors only."""

import pytest
from prefect.states import Completed, Failed

import tasks
from postdicom.errors import BadRequestError, NotFoundError, ServerError, ThrottledError, TransportError
from postdicom.retry import NO_RETRY, RetryPolicy
from tasks.policies import READ_TAGS, WRITE_TAGS, read_task_options, retry_on_transient, transient_retry_options

READS = {
    "qido_search",
    "retrieve_images_using_wado_rs",
    "search_folder",
    "get_patient_order_properties",
    "get_patient_order_list",
    "get_dicom_tag_content",
}


def test_every_documented_function_is_a_task_in_the_package():
    assert len(tasks.__all__) == 16
    for name in tasks.__all__:
        assert hasattr(getattr(tasks, name), "submit"), name


@pytest.mark.parametrize("name", sorted(tasks.__all__))
def test_each_task_is_tagged_as_a_read_or_a_write(name):
    task = getattr(tasks, name)
    expected = READ_TAGS if name in READS else WRITE_TAGS
    assert set(expected) <= set(task.tags), (name, task.tags)


@pytest.mark.parametrize(
    "error, retried",
    [
        (TransportError("connection refused"), True),
        (ServerError("server error", status=503), True),
        (ThrottledError("slow down", status=429), True),
        (BadRequestError("bad request", status=400), False),
        (NotFoundError("gone", status=404), False),
        (ValueError("not a UUID"), False),
    ],
)
def test_only_transient_failures_are_retried(error, retried):
    assert retry_on_transient(None, None, Failed(data=error)) is retried


def test_a_completed_state_is_never_retried():
    assert retry_on_transient(None, None, Completed(data=1)) is False


def test_the_read_cache_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("POSTDICOM_CACHE_MINUTES", "0")
    assert "cache_policy" not in read_task_options()
    monkeypatch.setenv("POSTDICOM_CACHE_MINUTES", "5")
    assert read_task_options()["cache_expiration"].total_seconds() == 300


@pytest.mark.parametrize("raw", ["ten", "-1"])
def test_a_cache_lifetime_that_is_not_a_number_of_minutes_is_refused_naming_the_setting(monkeypatch, raw):
    """A typo used to become the default 10 minutes without a word."""
    monkeypatch.setenv("POSTDICOM_CACHE_MINUTES", raw)
    with pytest.raises(ValueError, match="POSTDICOM_CACHE_MINUTES must be"):
        read_task_options()


@pytest.mark.parametrize("name", sorted(tasks.__all__))
def test_task_retries_come_from_the_one_retry_policy(name):
    """A task retried by Prefect is retried as often, and after the delays, the policy says."""
    task = getattr(tasks, name)
    policy = RetryPolicy.from_env()
    if task.retries:
        assert task.retries == policy.task_retries
        assert task.retry_delay_seconds == policy.task_retry_delays()
        assert task.retry_jitter_factor == policy.jitter
        assert task.retry_condition_fn is retry_on_transient


def test_task_retry_options_follow_the_settings(monkeypatch):
    monkeypatch.setenv("POSTDICOM_TASK_RETRIES", "3")
    monkeypatch.setenv("POSTDICOM_TASK_RETRY_DELAY", "1.5")
    monkeypatch.setenv("POSTDICOM_RETRY_JITTER", "0.2")
    options = transient_retry_options()
    assert options["retries"] == 3
    assert options["retry_delay_seconds"] == [1.5, 7.5, 37.5]
    assert options["retry_jitter_factor"] == 0.2
    assert transient_retry_options(NO_RETRY)["retries"] == 0
