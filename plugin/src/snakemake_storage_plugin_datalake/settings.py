"""Settings of the `datalake` storage plugin: `--storage-datalake-<name>` on the command line,
`storage-datalake-<name>` in a profile, `SNAKEMAKE_STORAGE_DATALAKE_<NAME>` for those marked
env_var (the secrets must come from there).

The class is made from the one declaration of the settings, `datalake_core.settings.SETTINGS`,
so that the options, their defaults and their help cannot drift from what the core parses."""

from dataclasses import Field, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import ApiError
from snakemake_interface_storage_plugins.settings import StorageProviderSettingsBase

from datalake_core.settings import CLI_PREFIX, SETTINGS, ProviderConfig, Setting, SettingsError

PREFIX = CLI_PREFIX
SECRETS = tuple(s.name for s in SETTINGS if s.secret)


def dataclass_field(setting: Setting) -> tuple[str, Any, Field[Any]]:
    """One field of the settings class, as Snakemake reads it: the annotation and the metadata
    `type` decide how it converts the command line string (flags are plain `bool`)."""
    metadata: dict[str, object] = {"help": setting.help, "env_var": setting.env_var,
                                   "required": setting.required}
    kind = setting.value_type
    if kind in (int, Path):
        metadata["type"] = kind
    annotation: Any = bool if kind is bool else kind | None
    default: Any = setting.default
    return setting.name, annotation, field(default=default, repr=not setting.secret,
                                           metadata=metadata)


class CheckedSettings:
    """What the settings class does besides holding the values."""

    _secrets: dict[str, str | None]

    def __post_init__(self) -> None:
        # Snakemake hands the env-var settings of a spawned job (a `run:` or `script:` job,
        # a cluster job) to it as `export NAME='value' && python -m snakemake ...`: a command
        # line anyone on the machine can read with ps. The secrets are kept off the fields it
        # reads; the job inherits them from the environment they came from.
        self._secrets = {name: getattr(self, name) for name in SECRETS}
        for name in SECRETS:
            setattr(self, name, None)
        # Checked as soon as Snakemake has read its command line and profile, before the
        # Snakefile: a bad value stops the run with one line naming the option. ApiError is what
        # Snakemake prints as "Error: <message>" without a traceback.
        try:
            self.config()
        except SettingsError as exc:
            raise ApiError(describe(exc)) from None

    def values(self) -> dict[str, object]:
        """Every setting by name, the secrets included."""
        values: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        values.update({k: v for k, v in self._secrets.items() if v is not None})
        return values

    def config(self) -> ProviderConfig:
        """The settings as the provider's typed configuration (SettingsError if invalid)."""
        return ProviderConfig.parse(self.values())


StorageProviderSettings = make_dataclass(
    "StorageProviderSettings",
    [dataclass_field(s) for s in SETTINGS],
    bases=(CheckedSettings, StorageProviderSettingsBase),
    # Named as if written here: Snakemake and pickle look the class up by module and name.
    namespace={"__module__": __name__},
)


def describe(exc: SettingsError) -> str:
    return f"datalake storage plugin: {PREFIX}{exc.setting}: {exc.reason}"
