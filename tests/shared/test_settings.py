"""A wrong or missing setting stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.contacts.settings import ContactsSettings
from shared.settings import ConfigurationError, PlatformSettings, load_settings


def test_an_unknown_bus_kind_names_crm_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BUS", "carrier-pigeon")
    with pytest.raises(ConfigurationError, match="CRM_BUS"):
        load_settings(PlatformSettings)


def test_kafka_without_servers_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BUS", "kafka")
    monkeypatch.delenv("CRM_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(ConfigurationError, match="CRM_KAFKA_BOOTSTRAP_SERVERS"):
        load_settings(PlatformSettings)


def test_a_service_setting_is_named_with_its_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_CONTACTS_DATABASE_URL", "mysql://db/contacts")
    with pytest.raises(ConfigurationError, match="CRM_CONTACTS_DATABASE_URL"):
        load_settings(ContactsSettings)


def test_the_reporting_currency_is_an_iso_4217_code(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(PlatformSettings).reporting_currency == "EUR"
    monkeypatch.setenv("CRM_REPORTING_CURRENCY", "usd")
    assert load_settings(PlatformSettings).reporting_currency == "USD"
    monkeypatch.setenv("CRM_REPORTING_CURRENCY", "EUX")
    with pytest.raises(ConfigurationError, match="CRM_REPORTING_CURRENCY"):
        load_settings(PlatformSettings)


def test_postgres_urls_from_other_tools_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_CONTACTS_DATABASE_URL", "postgresql://crm:crm@db:5432/contacts")
    assert load_settings(ContactsSettings).database_url == "postgresql+asyncpg://crm:crm@db:5432/contacts"


def test_defaults_give_embedded_mode_with_sqlite_under_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    for name in ("CRM_BUS", "CRM_CONTACTS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    platform = load_settings(PlatformSettings)
    assert platform.bus == "embedded"
    url = load_settings(ContactsSettings).resolved_database_url("contacts", platform)
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/contacts.sqlite"


def test_the_crm_command_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    crm = Path(sys.executable).with_name("crm")
    result = subprocess.run(
        [str(crm), "serve", "contacts", "--port", "1"],
        env={
            **os.environ,
            "CRM_BUS": "kafka",
            "CRM_KAFKA_BOOTSTRAP_SERVERS": "",
            "CRM_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CRM_KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def test_topic_durability_defaults_suit_production(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRM_KAFKA_REPLICATION_FACTOR", "CRM_KAFKA_MIN_INSYNC_REPLICAS"):
        monkeypatch.delenv(name, raising=False)
    platform = load_settings(PlatformSettings)
    assert (platform.kafka_replication_factor, platform.kafka_min_insync_replicas) == (3, 2)
    monkeypatch.setenv("CRM_KAFKA_REPLICATION_FACTOR", "1")
    assert load_settings(PlatformSettings).kafka_min_insync_replicas == 1


def test_a_min_isr_above_the_replication_factor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_KAFKA_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("CRM_KAFKA_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(ConfigurationError, match="CRM_KAFKA_MIN_INSYNC_REPLICAS"):
        load_settings(PlatformSettings)
