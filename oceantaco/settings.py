"""Runtime settings: one typed object read from ``OCEANTACO_*`` environment variables.

Bucket credentials are deliberately *not* settings: s3fs/gcsfs/obstore read their own standard variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``STORAGE_EMULATOR_HOST``…),
which is also what Kubernetes workload identity injects. Scratch space for downloads and TACO builds is
Python's standard temporary directory, so ``TMPDIR`` points it at a volume (an emptyDir on Kubernetes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OCEANTACO_", extra="ignore")

    cmems_mirror: str | None = Field(
        default=None,
        description="fsspec URL of a tree laid out like Copernicus Marine's native files "
        "(<PRODUCT_ID>/<DATASET_ID>_<version>/YYYY/MM/<file>); when set, CMEMS files are copied from it.",
    )
    cmems_max_connections: int = Field(
        default=4,
        ge=1,
        le=8,
        description="Concurrent Copernicus Marine toolbox transfers per process (files, or the zarr chunk "
        "reads of a subset); Copernicus Marine answers 429 under heavier load.",
    )
    cmems_retries: int = Field(
        default=4,
        ge=1,
        description="Attempts per Copernicus Marine toolbox call on transient errors (timeouts, dropped "
        "connections, 429/5xx); permanent errors (credentials, unknown dataset) are never retried.",
    )
    cmems_backoff_seconds: float = Field(
        default=2.0,
        ge=0.0,
        description="Base of the exponential backoff between toolbox attempts (full jitter, capped at 60 s).",
    )
    cmems_subset_depths: bool = Field(
        default=True,
        description="Fetch products whose catalog variables name depth levels (GLORYS) with "
        "copernicusmarine.subset, only those levels and variables, instead of the full daily file.",
    )
    argo_gdac: str = Field(
        default="https://data-argo.ifremer.fr",
        description="Argo GDAC root (https://, ftp:// or local path) with ar_index_global_prof.txt and dac/.",
    )
    pinned_versions: dict[str, str] = Field(
        default_factory=dict,
        description='Dataset version per dataset id, e.g. {"cmems_mod_glo_phy_my_0.083deg_P1D-m": "202311"}; '
        "unpinned datasets use the newest version the source lists.",
    )
    # --- AVISO FTP (SWOT). The password is a SecretStr: masked in reprs, unwrapped only for the FTP login.
    aviso_ftp_url: str = Field(
        default="ftp://ftp-access.aviso.altimetry.fr",
        description="AVISO FTP server, ftp://host[:port][/prefix]; never put credentials in it.",
    )
    aviso_user: str | None = Field(
        default=None,
        description="AVISO FTP user; unset skips SWOT downloads with a warning ('anonymous' for open "
        "mirrors).",
    )
    aviso_password: SecretStr | None = Field(default=None, description="AVISO FTP password (never logged).")
    swot_level: Literal["l2", "l3"] = Field(
        default="l3",
        description="SWOT level to download: l3 (LR SSH v2.0.1, into l3_swot/) or l2 (into l2_swot/).",
    )
    swot_kind: Literal["Basic", "Expert"] = Field(default="Basic", description="SWOT L3 product kind.")
    aviso_catalog_url: str | None = Field(
        default=None,
        description="Folder (path or URL) caching the AVISO catalog; the download command uses "
        "<output-dir>/<raw dir>/catalog, other callers default to a folder in the temp directory.",
    )
    aviso_catalog_max_age_hours: float = Field(
        default=168.0,
        ge=0,
        description="Re-list the AVISO server when the cached catalog is older than this.",
    )
    aviso_catalog_write: bool = Field(
        default=True, description="Store a new listing in aviso_catalog_url (a dry run of the CLI does not)."
    )
    aviso_refresh_catalog: bool = Field(
        default=False, description="Re-list the AVISO server once per process even if the catalog is fresh."
    )
    format_processes: int | None = Field(
        default=None,
        ge=1,
        description="At most this many format worker processes per pod or machine; by default as many as "
        "its CPU limit and memory limit (1.25 GiB each) allow.",
    )
    chunk_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often a pipeline run asks the Prefect server for the states of its chunk runs "
        "(one request for all of them).",
    )
    aviso_max_connections: int = Field(
        default=4, ge=1, le=16, description="Simultaneous FTP connections to AVISO per process."
    )
