"""liqmon's settings: msgspec Structs read from a TOML file, then overridden from the
environment.

Precedence, lowest first: the defaults below, the TOML file (``--config`` or
``LIQMON_CONFIG``), then ``LIQMON_<SECTION>__<FIELD>`` variables (e.g.
``LIQMON_KAFKA__BOOTSTRAP_SERVERS``). File values must have the field's type exactly;
environment strings are converted to it (``"6"`` -> 6, ``"true"`` -> True, an empty string
-> None where None is allowed, JSON for lists and tables). Unknown sections and fields are
errors. Any problem raises `ConfigError` whose message is one line naming the setting, what
was expected and where the value came from. docs/configuration.md lists every setting.

A new section is one field on `Settings` holding a Struct with defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from monitor.dynamic import DynamicSettings
from monitor.engine import EngineConfig
from monitor.errors import ConfigError
from monitor.log import LogSettings
from monitor.schema import StressScenario
from streams.settings import KafkaSettings, TopicSettings

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "ServiceSettings",
    "Settings",
    "SolvencySettings",
    "add_config_option",
    "env_name",
    "load_settings",
    "settings_from_args",
]

ENV_PREFIX = "LIQMON_"
#: Names the TOML file when ``--config`` is not given.
CONFIG_ENV = "LIQMON_CONFIG"

Positive = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the running monitor consumes, batches and serves its HTTP endpoints."""

    #: Consumer group the monitor instances share (they split the fills partitions).
    group_id: Annotated[str, msgspec.Meta(min_length=1)] = "liqmon"
    #: Most price ticks taken into one processing cycle. A cycle's cost is mostly
    #: revaluing the holders of the instruments that moved, whatever the number of ticks
    #: (the last per instrument wins), so large batches drain a backlog fast. They are
    #: polled and decoded 20,000 at a time (``monitor.intake.PRICE_CHUNK``).
    max_price_batch: Count = 200_000
    #: Most ledger records taken into one processing cycle. Each costs Python work, so
    #: this bounds how long a burst of fills can delay the next prices.
    max_ledger_batch: Count = 20_000
    #: A price older than this (event time vs. newest seen) is not used to liquidate.
    max_price_age_s: Positive = 5.0
    #: A tick moving more than this fraction from the last accepted price waits for
    #: confirmation before it can liquidate anyone.
    price_band: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.2
    #: Full revaluation of every account at this interval, on top of incremental updates.
    sweep_interval_s: Positive = 60.0
    #: How often the book-wide gauges (accounts by state, open positions, bad debt,
    #: liquidation exposure, open interest) are recomputed, in a worker thread: a pass
    #: over every account and position (about 0.5 s at a million accounts on 2 cores).
    book_metrics_interval_s: Positive = 5.0
    #: Address of /metrics, /healthz and /readyz (port 0: any free port, logged at start).
    http_host: Annotated[str, msgspec.Meta(min_length=1)] = "127.0.0.1"
    http_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9464
    #: Longest wait for input before a cycle runs with what it has.
    poll_timeout_ms: Count = 200
    #: Most bytes fetched from one partition per request (Kafka's
    #: max.partition.fetch.bytes). Kafka's 1 MiB default caps a cycle near 10,000 ticks of
    #: the usual one-partition prices topic; a busy feed wants larger cycles. 8 MiB gives
    #: cycles of up to about 85,000 ticks; a fetch's bytes stay in memory until its
    #: records are taken (16 MiB put a million-account monitor's peak over 1 GiB).
    max_partition_fetch_bytes: Count = 8 * 1024 * 1024
    #: How far ahead of the reference clock an input may be stamped: a price tick's ``ts``
    #: against this host's clock, a ledger event's ``ts`` against its Kafka record time.
    #: Later is rejected (``ts_out_of_range``), so no record can move a clock.
    max_clock_skew_s: Positive = 60.0
    #: Input records with a longer value are dead-lettered undecoded (``record_too_large``).
    max_record_bytes: Count = 1024 * 1024
    #: A dead letter keeps at most this many bytes of the original value (headers say it
    #: was cut and how long it was), so it always fits a Kafka record.
    max_dlq_value_bytes: Annotated[int, msgspec.Meta(ge=1, le=512 * 1024)] = 256 * 1024
    #: One Kafka transaction per cycle: events, changelog, dead letters and the consumed
    #: ledger offsets become visible together (read them ``read_committed``). False:
    #: at least once, with deterministic event ids to drop repeats by.
    exactly_once: bool = True
    #: A name unique to this instance and stable across its restarts (a pod name):
    #: static group membership, so a restarted instance takes its partitions back at once,
    #: and a transactional id that fences this instance's zombie. Empty: a dynamic member
    #: and a fresh transactional id per process.
    instance_id: str = ""
    #: How long the group waits for a silent member before moving its partitions.
    session_timeout_ms: Annotated[int, msgspec.Meta(ge=1000, le=300_000)] = 10_000
    #: How often each ledger partition's book is snapshotted into ``liqmon-state`` (copied
    #: in one cycle, written over the next ones), so recovery loads it and replays only the
    #: ledger after it.
    #: Must be well below the retention of ``fills``. 0 turns snapshots off.
    snapshot_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 300.0
    #: The venue's insurance fund per asset (e.g. {"USDT": 5e6}), valued at each asset's
    #: price and exported as ``liqmon_insurance_fund`` so dashboards and alerts compare it
    #: with the bad debt. Empty: not exported.
    insurance_fund: dict[str, float] = {}
    #: How often the price guard's accepted marks are saved to ``liqmon-state``, so a
    #: restarted monitor screens the price table against them. Held prices save at once.
    guard_checkpoint_interval_s: Positive = 1.0
    #: Write each cycle's input boundaries to ``liqmon-state`` (``cycle`` records, one
    #: small record per cycle, compacted to one per run), so ``liqmon replay`` re-forms
    #: exactly the cycles this run formed (docs/replay.md).
    record_cycles: bool = True


class SolvencySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Book-wide stress and the solvency report (docs/solvency.md)."""

    #: How often the service stresses its whole book and publishes a ``solvency_report``
    #: to the ``solvency`` topic (computed in a worker thread). 0 turns it off.
    interval_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    #: The named scenarios; empty: each underlying -30 %, -50 %, +50 % with vol up and a
    #: joint -50 % crash of every underlying.
    scenarios: list[StressScenario] = []
    #: A daily close history (``date,<underlying>,...``) whose worst day is added as a
    #: scenario. Empty: none.
    history_file: str = ""
    #: Cover-2 groups: accounts whose ids agree up to the first occurrence of this text
    #: (``firm7/sub1`` and ``firm7/sub2`` with ``"/"``) are one group. Empty: each account.
    group_separator: str = ""
    #: Largest contributors listed per scenario.
    top: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    #: Bankrupt accounts listed per scenario (largest debt first; all are counted).
    report_accounts: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 100
    #: Candidates listed per auto-deleveraging queue.
    adl_queue_length: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """All of liqmon's configuration; each field is a TOML section."""

    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    topics: TopicSettings = msgspec.field(default_factory=TopicSettings)
    service: ServiceSettings = msgspec.field(default_factory=ServiceSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    solvency: SolvencySettings = msgspec.field(default_factory=SolvencySettings)
    dynamic: DynamicSettings = msgspec.field(default_factory=DynamicSettings)


def env_name(path: str) -> str:
    """The environment variable that overrides setting `path` ("kafka.client_id")."""
    return ENV_PREFIX + path.replace(".", "__").upper()


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, the TOML file at `path` (if any), then `environ` overrides."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = _read_toml(path) if path is not None else {}
    sources = {"": f"from {path}"} if path is not None else {}
    for dotted, value, variable in _env_overrides(env):
        section, _, field = dotted.rpartition(".")
        table = _table_at(data, section)
        if table is not None:
            table[field] = value
            sources[dotted] = f"from env {variable}"
    try:
        return msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise _config_error(str(exc), sources) from None


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Give a sub-command ``--config FILE`` (default: $LIQMON_CONFIG) and ``--bootstrap``."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=None,
        help=f"TOML settings file (default: ${CONFIG_ENV} if set; see docs/configuration.md)",
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        default=None,
        help="Kafka bootstrap servers (overrides kafka.bootstrap_servers of the settings)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings for a sub-command that called `add_config_option`; ``--bootstrap`` wins."""
    path: Path | None = getattr(args, "config", None)
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    settings = load_settings(path)
    bootstrap: str | None = getattr(args, "bootstrap", None)
    if bootstrap:
        kafka = msgspec.structs.replace(settings.kafka, bootstrap_servers=bootstrap)
        settings = msgspec.structs.replace(settings, kafka=kafka)
    return settings


# -- reading -------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _table_at(data: dict[str, Any], dotted: str) -> dict[str, Any] | None:
    """The nested table at `dotted`, created if absent; None if the file put a value there."""
    table = data
    for key in dotted.split("."):
        child = table.setdefault(key, {})
        if not isinstance(child, dict):
            return None
        table = child
    return table


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    """(setting path, typed value, variable) for every LIQMON_<SECTION>__<FIELD> variable."""
    sections = {field.name for field in msgspec.structs.fields(Settings)}
    overrides = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or variable == CONFIG_ENV:
            continue
        rest = variable[len(ENV_PREFIX) :].lower()
        if "__" not in rest:
            if rest.split("_", 1)[0] in sections:
                raise ConfigError(
                    f"env {variable}: settings are named {ENV_PREFIX}<SECTION>__<FIELD> "
                    f"with two underscores, e.g. {env_name('kafka.bootstrap_servers')}"
                )
            continue
        dotted = rest.replace("__", ".")
        field_type = _field_type(dotted, variable)
        overrides.append((dotted, _from_env(env[variable], field_type, dotted, variable), variable))
    return overrides


def _field_type(dotted: str, variable: str) -> Any:
    """The annotated type of setting `dotted`, or ConfigError if there is no such setting."""
    owner: Any = Settings
    walked: list[str] = []
    for key in dotted.split("."):
        walked.append(key)
        if not (isinstance(owner, type) and issubclass(owner, msgspec.Struct)):
            raise ConfigError(
                f"config {'.'.join(walked[:-1])}: is not a section (from env {variable})"
            )
        fields = {field.name: field.type for field in msgspec.structs.fields(owner)}
        if key not in fields:
            kind = "section" if len(walked) == 1 else "field"
            raise ConfigError(f"config {'.'.join(walked)}: unknown {kind} (from env {variable})")
        owner = fields[key]
    return owner


def _from_env(raw: str, field_type: Any, dotted: str, variable: str) -> Any:
    """Convert an environment string to `field_type` (see the module docstring)."""
    if raw == "" and _admits_none(field_type):
        return None
    try:
        if _is_structured(msgspec.inspect.type_info(field_type)):
            return msgspec.json.decode(raw, type=field_type, strict=False)
        return msgspec.convert(raw, field_type, strict=False)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        match = _AT.match(str(exc))
        text, path = (match["message"], match["path"] or "") if match else (str(exc), "")
        unknown = _UNKNOWN.match(text)
        if unknown:  # inside a JSON value: name the field, e.g. engine.collateral[0].x
            where = f"{dotted}{path}.{unknown['name']}"
            raise ConfigError(f"config {where}: unknown field (from env {variable})") from None
        message = _describe(text, field_type if not path else None)
        raise ConfigError(f"config {dotted}{path}: {message} (from env {variable})") from None


_STRUCTURED = (
    msgspec.inspect.CollectionType,
    msgspec.inspect.DictType,
    msgspec.inspect.StructType,
    msgspec.inspect.TypedDictType,
    msgspec.inspect.DataclassType,
)


def _is_structured(info: msgspec.inspect.Type) -> bool:
    """Lists, tables and records come from the environment as JSON."""
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_structured(member) for member in info.types)
    return isinstance(info, _STRUCTURED)


def _admits_none(field_type: Any) -> bool:
    info = msgspec.inspect.type_info(field_type)
    return isinstance(info, msgspec.inspect.UnionType) and any(
        isinstance(member, msgspec.inspect.NoneType) for member in info.types
    )


# -- reporting -------------------------------------------------------------------------------

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]+)`(?P<rest>.*)$")
_FIELD_PROBLEM = re.compile(r"^(?P<field>[a-z_]+): (?P<problem>.+)$")


def _config_error(raw: str, sources: Mapping[str, str]) -> ConfigError:
    """Turn a msgspec validation message into one line naming the setting at fault."""
    match = _AT.match(raw)
    message, path = (match["message"], match["path"] or "") if match else (raw, "")
    dotted = path.lstrip(".")
    unknown = _UNKNOWN.match(message)
    field_problem = _FIELD_PROBLEM.match(message)
    if unknown:
        kind = "field" if dotted else "section"
        dotted = f"{dotted}.{unknown['name']}" if dotted else unknown["name"]
        message = f"unknown {kind}"
    elif field_problem and dotted:
        dotted = f"{dotted}.{field_problem['field']}"
        message = field_problem["problem"]
    else:
        message = _describe(message, _type_at(dotted))
    return ConfigError(f"config {dotted or '(top level)'}: {message}{_source(dotted, sources)}")


def _describe(message: str, field_type: Any) -> str:
    """msgspec's wording, in liqmon's: lower case, no backticks, choices spelled out."""
    if message.startswith("Invalid enum value") and field_type is not None:
        info = msgspec.inspect.type_info(field_type)
        choices = _choices(info)
        if choices:
            got = message.removeprefix("Invalid enum value ").strip()
            return f"expected one of {', '.join(choices)}, got {got}"
    expected = _EXPECTED.match(message)
    if expected:
        kind = {"object": "table", "array": "list"}.get(expected["expected"], expected["expected"])
        rest = expected["rest"].replace("`", "").replace("object", "table")
        return f"expected {kind}{rest}"
    return message[:1].lower() + message[1:]


def _choices(info: msgspec.inspect.Type) -> list[str]:
    if isinstance(info, msgspec.inspect.LiteralType):
        return [str(value) for value in info.values]
    if isinstance(info, msgspec.inspect.UnionType):
        return [value for member in info.types for value in _choices(member)]
    return []


def _type_at(dotted: str) -> Any:
    owner: Any = Settings
    for key in filter(None, dotted.split(".")):
        if not (isinstance(owner, type) and issubclass(owner, msgspec.Struct)):
            return None
        fields = {field.name: field.type for field in msgspec.structs.fields(owner)}
        if key not in fields:
            return None
        owner = fields[key]
    return owner


def _source(dotted: str, sources: Mapping[str, str]) -> str:
    """Where the value at `dotted` came from: its variable, else the file (and any variables
    of the same section, since a cross-field check may be tripped by either)."""
    from_env = [
        source
        for key, source in sources.items()
        if key and (key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."))
    ]
    if not from_env:
        section = dotted.split(".", 1)[0]
        from_env = [
            source for key, source in sources.items() if key.split(".", 1)[0] == section and key
        ]
        if "" in sources:
            from_env.insert(0, sources[""])
    return f" ({' and '.join(from_env)})" if from_env else ""
