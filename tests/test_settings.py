"""Settings are read once; missing or contradictory variables name themselves."""

from __future__ import annotations

import pytest

from config.settings import LocalStorage, S3Storage, Settings, SettingsError

BASE = {"WORKER_TOKEN": "w" * 32, "API_KEYS": "acme:sk_acme_123,globex:sk_globex_123"}


def test_defaults_are_local_storage_and_local_redis():
    settings = Settings.from_env(BASE)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.internal_base_url == settings.public_base_url
    assert isinstance(settings.storage, LocalStorage)
    assert settings.storage.root.name == "storage"
    assert settings.max_upload_bytes == 500_000_000
    assert settings.api_keys == {"sk_acme_123": "acme", "sk_globex_123": "globex"}


def test_r2_variables_make_an_s3_store_at_the_r2_endpoint():
    settings = Settings.from_env({**BASE, "R2_ACCOUNT_ID": "abc", "R2_ACCESS_KEY_ID": "k",
                                  "R2_SECRET_ACCESS_KEY": "s", "R2_BUCKET_NAME": "b"})
    assert settings.storage == S3Storage(bucket="b", endpoint_url="https://abc.r2.cloudflarestorage.com",
                                         region="auto", access_key_id="k", secret_access_key="s")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WORKER_TOKEN": ""}, "WORKER_TOKEN"),
        ({"WORKER_TOKEN": "short"}, "WORKER_TOKEN"),
        ({"API_KEYS": "no-colon"}, "API_KEYS"),
        ({"MAX_UPLOAD_BYTES": "lots"}, "MAX_UPLOAD_BYTES"),
        ({"PUBLIC_BASE_URL": "ftp://x"}, "PUBLIC_BASE_URL"),
        ({"INTERNAL_BASE_URL": "api:8000"}, "INTERNAL_BASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"R2_ACCOUNT_ID": "abc"}, "R2_ACCESS_KEY_ID"),
        ({"S3_ENDPOINT_URL": "http://minio:9000"}, "S3_BUCKET"),
        ({"S3_BUCKET": "b", "R2_BUCKET_NAME": "b"}, "R2_"),
        ({"S3_BUCKET": "b", "STORAGE_DIR": "/data"}, "STORAGE_DIR"),
        ({"S3_BUCKET": "b", "AWS_ACCESS_KEY_ID": "k"}, "AWS_SECRET_ACCESS_KEY"),
        ({"LEASE_SECONDS": "soon"}, "LEASE_SECONDS"),
        ({"REAP_INTERVAL": "0"}, "REAP_INTERVAL"),
        ({"BROKER_VISIBILITY_TIMEOUT": "-1"}, "BROKER_VISIBILITY_TIMEOUT"),
        ({"S3_BUCKET": "b", "S3_MAX_ATTEMPTS": "0"}, "S3_MAX_ATTEMPTS"),
        ({"S3_BUCKET": "b", "S3_READ_TIMEOUT": "slow"}, "S3_READ_TIMEOUT"),
        ({"ALLOW_PRIVATE_URLS": "localhost"}, "ALLOW_PRIVATE_URLS"),
        ({"WEBHOOK_RETRY_SCALE": "2"}, "WEBHOOK_RETRY_SCALE"),
        ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS"),
    ],
)
def test_bad_settings_fail_naming_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**BASE, **env})


def test_the_api_needs_at_least_one_key():
    settings = Settings.from_env({"WORKER_TOKEN": "w" * 32})
    with pytest.raises(SettingsError, match="API_KEYS"):
        settings.require_api_keys()


def test_secrets_stay_out_of_repr():
    settings = Settings.from_env({**BASE, "S3_BUCKET": "b", "AWS_ACCESS_KEY_ID": "AKIA123",
                                  "AWS_SECRET_ACCESS_KEY": "topsecret"})
    text = repr(settings)
    assert "topsecret" not in text and "w" * 32 not in text and "sk_acme_123" not in text


def test_settings_are_read_from_the_process_environment(monkeypatch, tmp_path):
    for name, value in {**BASE, "STORAGE_DIR": str(tmp_path), "LEASE_SECONDS": "42",
                        "BROKER_VISIBILITY_TIMEOUT": "600", "LOG_LEVEL": "debug"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.storage == LocalStorage(tmp_path.resolve())
    assert settings.lease_seconds == 42 and settings.visibility_timeout == 600
    assert settings.log_level == "DEBUG"


def test_a_mapping_is_read_instead_of_the_process_environment(monkeypatch):
    monkeypatch.setenv("LEASE_SECONDS", "42")
    assert Settings.from_env(BASE).lease_seconds == 60  # os.environ is not read


def test_a_bad_value_is_not_repeated_in_the_error():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE, "S3_BUCKET": "b", "S3_READ_TIMEOUT": "hunter2"})
    assert "hunter2" not in str(caught.value)
